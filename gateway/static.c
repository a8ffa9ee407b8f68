/*
 * static.c: GET/HEAD of files under PUBLIC_DIR (see static.h for the rules).
 * Responses are sent with sendfile (MHD_create_response_from_fd), carry an
 * ETag (inode, size, mtime) and Last-Modified, answer If-None-Match with 304,
 * and are cached for an hour except HTML, CSS and scripts (no-cache: always
 * revalidated, so a deploy takes effect at once).
 */
#include "gateway/static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/router.h"

int static_open_root(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int static_check_path(const char *url_path, char *rel, size_t cap)
{
    if (!url_path || url_path[0] != '/')
        return -EINVAL;
    size_t n = strlen(url_path);
    if (n >= STATIC_PATH_MAX || n >= cap)
        return -ENAMETOOLONG;
    if (n == 1) {
        if (cap < sizeof("index.html"))
            return -ENAMETOOLONG;
        strcpy(rel, "index.html");
        return 0;
    }
    if (url_path[n - 1] == '/')
        return -EISDIR;
    const char *p = url_path + 1;
    for (const char *seg = p; *seg;) {
        const char *e = strchr(seg, '/');
        size_t len = e ? (size_t)(e - seg) : strlen(seg);
        if (len == 0 || seg[0] == '.')          /* "//", ".", "..", hidden files */
            return -EINVAL;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)seg[i];
            if (c < 0x20 || c == 0x7f || c == '\\')
                return -EINVAL;
        }
        seg += len + (e ? 1 : 0);
    }
    memcpy(rel, p, n);                           /* includes the NUL */
    return 0;
}

int static_open(int root_fd, const char *rel, int *ret_fd, struct stat *st)
{
    char buf[STATIC_PATH_MAX];
    int dir = root_fd, fd = -1, rc = 0;
    if (strlen(rel) >= sizeof(buf))
        return -ENAMETOOLONG;
    strcpy(buf, rel);
    char *save = NULL;
    char *seg = strtok_r(buf, "/", &save);
    while (seg) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_NOFOLLOW | O_CLOEXEC | (next ? O_DIRECTORY | O_RDONLY : O_RDONLY | O_NONBLOCK);
        fd = openat(dir, seg, flags);
        if (dir != root_fd)
            close(dir);
        if (fd < 0) {
            rc = errno == ENOTDIR ? -ENOENT : -errno;
            goto out;
        }
        dir = fd;
        seg = next;
    }
    if (fd < 0) {
        rc = -ENOENT;
        goto out;
    }
    if (fstat(fd, st) != 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = -ENOENT;
        goto out;
    }
    *ret_fd = fd;
    return 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static const struct { const char *ext, *type; } mimes[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm", "text/html; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "json", "application/json; charset=utf-8" },
    { "map", "application/json; charset=utf-8" },
    { "txt", "text/plain; charset=utf-8" },
    { "md", "text/markdown; charset=utf-8" },
    { "svg", "image/svg+xml" },
    { "png", "image/png" },
    { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },
    { "webp", "image/webp" },
    { "ico", "image/x-icon" },
    { "woff2", "font/woff2" },
    { "woff", "font/woff" },
    { "wasm", "application/wasm" },
};

const char *static_mime(const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof(mimes) / sizeof(mimes[0]); i++)
            if (strcasecmp(dot + 1, mimes[i].ext) == 0)
                return mimes[i].type;
    return "application/octet-stream";
}

static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    if (strcmp(inm, "*") == 0)
        return true;
    return strstr(inm, etag) != NULL;   /* lists and W/ prefixes tolerated */
}

static int serve_static(struct req *r)
{
    char rel[STATIC_PATH_MAX];
    int rc = static_check_path(r->url, rel, sizeof(rel));
    if (rc)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "Not found");
    int fd;
    struct stat st;
    if (r->gw->public_fd < 0 || static_open(r->gw->public_fd, rel, &fd, &st) != 0)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "Not found");

    char etag[64], lm[64];
    snprintf(etag, sizeof(etag), "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec);
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(lm, sizeof(lm), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    const char *type = static_mime(rel);
    /* Pages and their code revalidate (cheap 304s by ETag), so a deploy is seen at
     * once; images and fonts may be cached for an hour. */
    bool code = strncmp(type, "text/", 5) == 0 || strncmp(type, "application/json", 16) == 0;
    const char *cache = code ? "no-cache" : "public, max-age=3600";

    struct MHD_Response *resp;
    unsigned status;
    if (etag_matches(req_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        close(fd);
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_MODIFIED;
    } else {
        resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);   /* takes the fd */
        status = MHD_HTTP_OK;
        if (!resp)
            close(fd);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, lm);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    return reply_response(r, status, resp);
}

void routes_static(struct router *rt)
{
    router_add(rt, "GET", "/*", serve_static, ROUTE_NO_LOG);
}
