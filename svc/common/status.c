#include "chat_status.h"

static const char *const names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
	"DATA_LOSS", "UNAUTHENTICATED",
};

const char *chat_strerror(int status)
{
	if (status < 0 || status >= (int)(sizeof names / sizeof names[0]))
		return "?";
	return names[status];
}

int chat_status_retryable(int status)
{
	return status == CHAT_UNAVAILABLE || status == CHAT_DEADLINE_EXCEEDED ||
	       status == CHAT_RESOURCE_EXHAUSTED || status == CHAT_ABORTED;
}
