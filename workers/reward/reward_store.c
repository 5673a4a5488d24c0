/* reward_store.c - what both reward store backends share beyond the interface: the releasers of
 * the records they fill (see reward_store.h). Stateless, thread-safe. */
#include "reward_store.h"

void rp_reward_release_request(void *r) {
    rp_request_clear(r);
}

void rp_reward_release_outbox(void *m) {
    rp_outbox_message_clear(m);
}

void rp_reward_release_batch(void *b) {
    rp_batch_clear(b);
}

void rp_reward_release_idem(void *v) {
    rp_idem_clear(v);
}
