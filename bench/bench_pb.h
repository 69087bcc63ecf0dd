/* The few protobuf messages the load generator writes and reads, coded by
 * hand on the wire format (proto/client.proto) so that a frame costs no
 * allocation: a ClientFrame holding a SendReq out, the fields of a
 * ServerFrame that matter in. Checked against protobuf-c in
 * tests/bench/bench_unit_test.c. */
#ifndef BENCH_PB_H
#define BENCH_PB_H

#include <stddef.h>
#include <stdint.h>

/* ServerFrame.kind field numbers (client.proto). */
enum bench_kind {
	BENCH_K_NONE = 0,
	BENCH_K_ERROR = 10,
	BENCH_K_WELCOME = 11,
	BENCH_K_SEND_ACK = 12,
	BENCH_K_CHANNEL_LIST = 14,
	BENCH_K_MESSAGE = 15,
};

/* Largest encoded send frame for a body of BENCH_PB_MAX_BODY bytes. */
#define BENCH_PB_MAX_BODY 4000
#define BENCH_PB_MAX_CMID 64
#define BENCH_PB_SEND_MAX (BENCH_PB_MAX_BODY + BENCH_PB_MAX_CMID + 64)

/* Encode ClientFrame{req_id, send{channel_id, client_msg_id, body}} into
 * out (at least BENCH_PB_SEND_MAX bytes). cmid_len and body_len must be
 * within the limits above. Returns the bytes written. */
size_t bench_pb_send(uint8_t *out, uint64_t req_id, uint64_t channel_id,
                     const char *cmid, size_t cmid_len, const char *body,
                     size_t body_len);

/* What the load generator reads from a ServerFrame. Pointers point into
 * the parsed buffer. */
typedef struct bench_sframe {
	int kind; /* enum bench_kind, or another field number */
	uint64_t req_id;
	uint64_t channel_id;  /* MESSAGE, SEND_ACK, ERROR */
	uint64_t seq;         /* MESSAGE */
	uint64_t sender_id;   /* MESSAGE */
	int64_t sent_at_ms;   /* MESSAGE: the edge accepted it (wall clock) */
	int64_t stored_at_ms; /* MESSAGE: the store committed it */
	const uint8_t *body;  /* MESSAGE */
	size_t body_len;
	int code;         /* ERROR */
	int retryable;    /* ERROR */
	uint64_t user_id; /* WELCOME */
} bench_sframe;

/* Parse a ServerFrame. Returns 0, or -1 when the bytes are not a valid
 * protobuf encoding (truncated, bad wire type, overlong varint). Unknown
 * fields are skipped. */
int bench_pb_parse(const uint8_t *p, size_t len, bench_sframe *f);

#endif
