/* chatctl: the chat fleet's admin CLI (see ctl.h and docs/OPERATIONS.md,
 * "Administration: chatctl"). */
#include <signal.h>
#include <stdio.h>

#include "ctl.h"

int main(int argc, char **argv)
{
	/* A closed pipe (chatctl ... | head) ends the output, not us. */
	signal(SIGPIPE, SIG_IGN);
	return ctl_run(argc, argv, stdout, stderr);
}
