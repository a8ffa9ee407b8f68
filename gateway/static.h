/*
 * Static files from PUBLIC_DIR.  Nothing outside the folder is reachable:
 * the URL path is checked as text (no "..", ".", hidden or empty segments,
 * control bytes or backslashes; %00 is refused by the server before routing),
 * then opened one component at a time with O_NOFOLLOW below a directory fd,
 * so symlinks are never followed, and only regular files are served.
 * Thread-safe after static_init.
 */
#ifndef GATEWAY_STATIC_H
#define GATEWAY_STATIC_H

#include <stddef.h>
#include <sys/stat.h>

#define STATIC_PATH_MAX 1024

/* Open the public folder; returns a directory fd or -errno. */
int static_open_root(const char *dir);
/* URL path ("/a/b.css", already percent-decoded) -> relative path ("a/b.css");
 * "/" -> "index.html".  0, -EINVAL (forbidden), -ENAMETOOLONG, -EISDIR (ends in '/'). */
int static_check_path(const char *url_path, char *rel, size_t cap);
/* Open rel below root_fd without following symlinks; regular files only.
 * 0 with *ret_fd and *st, or -ENOENT / -ELOOP (symlink) / -EACCES. */
int static_open(int root_fd, const char *rel, int *ret_fd, struct stat *st);
/* Content-Type for a file name (by extension); application/octet-stream if unknown. */
const char *static_mime(const char *name);

#endif
