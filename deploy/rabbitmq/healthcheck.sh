#!/bin/sh
# Healthy = the AMQP listener accepts connections (not merely a node that answers ping, which it
# does before its listeners open) and the definitions are loaded: the api's user authenticates.
set -eu
rabbitmq-diagnostics -q check_port_connectivity >/dev/null
rabbitmqctl -q authenticate_user rp-api "$RP_AMQP_PASSWORD_API" >/dev/null
