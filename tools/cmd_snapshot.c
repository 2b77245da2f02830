/*
 * cmd_snapshot.c - `kmsfs snapshot` (being written this session; replaced before the issue closes).
 */
#include "cli.h"

int cmd_snapshot(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_error("snapshot: not built yet");
}
