#!/bin/sh
# Starts RabbitMQ in the foreground with the platform's definitions, their passwords taken from
# the environment (RP_AMQP_PASSWORD_ADMIN, _API, _AUTH, _EVENT, _REWARD). The checked-in
# definitions.json holds the development passwords; a container never loads those.
set -eu
for v in ADMIN API AUTH EVENT REWARD; do
  eval "p=\${RP_AMQP_PASSWORD_$v:-}"
  if [ -z "$p" ]; then
    echo "rabbitmq: RP_AMQP_PASSWORD_$v is not set; refusing to start with the published development passwords" >&2
    exit 1
  fi
done
umask 077
/etc/rabbitmq/definitions.py >/etc/rabbitmq/definitions.json.new
mv /etc/rabbitmq/definitions.json.new /etc/rabbitmq/definitions.json
exec rabbitmq-server
