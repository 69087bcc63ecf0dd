/* Status codes shared by every module: the gRPC numbering of chat.Code in
 * proto/common.proto, so a status crosses the wire as a plain cast. */
#ifndef CHAT_STATUS_H
#define CHAT_STATUS_H

typedef enum chat_status {
	CHAT_OK = 0,
	CHAT_CANCELLED = 1,
	CHAT_UNKNOWN = 2,
	CHAT_INVALID_ARGUMENT = 3,
	CHAT_DEADLINE_EXCEEDED = 4,
	CHAT_NOT_FOUND = 5,
	CHAT_ALREADY_EXISTS = 6,
	CHAT_PERMISSION_DENIED = 7,
	CHAT_RESOURCE_EXHAUSTED = 8,
	CHAT_FAILED_PRECONDITION = 9,
	CHAT_ABORTED = 10,
	CHAT_OUT_OF_RANGE = 11,
	CHAT_UNIMPLEMENTED = 12,
	CHAT_INTERNAL = 13,
	CHAT_UNAVAILABLE = 14,
	CHAT_DATA_LOSS = 15,
	CHAT_UNAUTHENTICATED = 16,
} chat_status;

/* The upper-case name of a status ("NOT_FOUND"); "?" for unknown values. */
const char *chat_strerror(int status);

/* Whether a request that failed with this status may succeed if retried
 * unchanged (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED). */
int chat_status_retryable(int status);

#endif
