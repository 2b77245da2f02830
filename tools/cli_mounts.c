/*
 * cli_mounts.c - what is mounted where, from /proc/self/mountinfo: for
 * kmsfs volume (which kmsfs mount an image is on, where a loop device is
 * mounted), and for rekey and fsck (is this cipher directory mounted?).
 *
 * A kmsfs mount's source is its cipher directory (mount.c sets fsname),
 * so "is CIPHERDIR mounted" is a fuse.kmsfs line with that source.
 * mountinfo writes space, tab, newline and backslash in paths as \ooo.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void unescape(char *text)
{
	char *out = text;

	for (const char *in = text; *in; ) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

static int copy_field(char *out, size_t len, const char *field)
{
	if (!field || strlen(field) >= len)
		return -1;
	memcpy(out, field, strlen(field) + 1);
	unescape(out);
	return 0;
}

/* "id parent major:minor root mountpoint options [optional...] - fstype source super" */
static int parse_mount_line(char *line, struct cli_mount *m)
{
	char *fields[8] = { 0 }, *save = NULL, *word;
	int count = 0, after_dash = 0;

	for (word = strtok_r(line, " \n", &save); word; word = strtok_r(NULL, " \n", &save)) {
		if (count < 5) {
			fields[count++] = word;
		} else if (!after_dash && strcmp(word, "-") == 0) {
			after_dash = 1;
			count = 5;
		} else if (after_dash && count < 7) {
			fields[count++] = word;
		}
	}
	if (count < 7 || sscanf(fields[2], "%u:%u", &m->major, &m->minor) != 2)
		return -1;
	if (copy_field(m->root, sizeof(m->root), fields[3]) != 0 ||
	    copy_field(m->mountpoint, sizeof(m->mountpoint), fields[4]) != 0 ||
	    copy_field(m->fstype, sizeof(m->fstype), fields[5]) != 0 ||
	    copy_field(m->source, sizeof(m->source), fields[6]) != 0)
		return -1;
	return 0;
}

int cli_each_mount(cli_mount_visit visit, void *arg)
{
	struct cli_mount *m = malloc(sizeof(*m));
	char *line = NULL;
	size_t cap = 0;
	FILE *file;
	int ret = -1;

	if (!m) {
		errno = ENOMEM;
		return -1;
	}
	file = fopen("/proc/self/mountinfo", "re");
	if (!file)
		goto out;
	while (getline(&line, &cap, file) > 0)
		if (parse_mount_line(line, m) == 0 && visit(m, arg))
			break;
	fclose(file);
	ret = 0;
out:
	free(line);
	free(m);
	return ret;
}

struct kmsfs_search {
	const char *cipherdir;
	char *mountpoint;
	size_t len;
	int found;
};

static int visit_kmsfs(const struct cli_mount *m, void *arg)
{
	struct kmsfs_search *s = arg;

	if (strcmp(m->fstype, "fuse.kmsfs") != 0 || strcmp(m->source, s->cipherdir) != 0)
		return 0;
	snprintf(s->mountpoint, s->len, "%s", m->mountpoint);
	s->found = 1;
	return 1;
}

int cli_kmsfs_mounted_at(const char *cipherdir, char *mountpoint, size_t len)
{
	struct kmsfs_search s = { .cipherdir = cipherdir, .mountpoint = mountpoint, .len = len };

	if (cli_each_mount(visit_kmsfs, &s) != 0)
		return 0;
	return s.found;
}
