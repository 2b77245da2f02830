/*
 * cmd_rekey.c - `kmsfs rekey` (being written this session; replaced before the issue closes).
 */
#include "cli.h"

int cmd_rekey(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_error("rekey: not built yet");
}
