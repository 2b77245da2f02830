/*
 * offline.c - a volume's data keys and backing files without a mount
 * (being written this session).
 */
#include "fs_internal.h"
