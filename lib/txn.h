/* txn.h - how the body of a unit of work ends; shared by the SQLite and MongoDB transaction
 * runners and every store built on them. Constant data. */
#ifndef RP_LIB_TXN_H
#define RP_LIB_TXN_H

/* What a body tells the runner when it returns.
 *   COMMIT   keep everything the body wrote;
 *   ROLLBACK the body decided not to keep anything (a refusal, e.g. out of stock): nothing it
 *            wrote stays, and the runner still reports success, since a refusal is an outcome;
 *   FAILED   an operation of the body failed: nothing stays and the runner reports the error
 *            (MongoDB may first run the body again, when the driver deems the error transient). */
typedef enum rp_txn_end { RP_TXN_COMMIT = 0, RP_TXN_ROLLBACK, RP_TXN_FAILED } rp_txn_end_t;

#endif
