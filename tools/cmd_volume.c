/*
 * cmd_volume.c - `kmsfs volume` (being written this session; replaced before the issue closes).
 */
#include "cli.h"

int cmd_volume(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_error("volume: not built yet");
}
