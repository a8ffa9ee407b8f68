/*
 * Static path resolution: static_check_path (URL path -> relative path, as
 * text), static_open (one component at a time below a directory fd, never
 * through a symlink, regular files only) and static_mime.  static_open runs
 * against a temporary tree made by the fixture below:
 *
 *   <tmp>/outside.txt          a file outside the public root
 *   <tmp>/outside-dir/x.txt    a directory outside the public root
 *   <tmp>/pub/index.html
 *   <tmp>/pub/a/b/c.css        a regular nested file
 *   <tmp>/pub/link-file   -> ../outside.txt
 *   <tmp>/pub/link-dir    -> ../outside-dir
 *   <tmp>/pub/a/link-up   -> ..           (a directory symlink mid-path)
 *   <tmp>/pub/fifo             a named pipe (must not be opened, must not block)
 *   <tmp>/pub/dir              a directory (not a file)
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/static.h"

/* ------------------------------------------------------------ static_check_path */

static void path_ok(const char *url, const char *want)
{
    char rel[STATIC_PATH_MAX];
    memset(rel, 'X', sizeof(rel));
    int rc = static_check_path(url, rel, sizeof(rel));
    ck_assert_msg(rc == 0, "\"%s\": expected 0, got %d", url, rc);
    ck_assert_str_eq(rel, want);
}

static void path_bad(const char *url, int want)
{
    char rel[STATIC_PATH_MAX];
    int rc = static_check_path(url, rel, sizeof(rel));
    ck_assert_msg(rc == want, "\"%s\": expected %d, got %d", url, want, rc);
}

START_TEST(check_path_accepts_normal_paths)
{
    path_ok("/", "index.html");
    path_ok("/index.html", "index.html");
    path_ok("/sse-example.html", "sse-example.html");
    path_ok("/a/b/c.css", "a/b/c.css");
    path_ok("/img/logo.v2.png", "img/logo.v2.png");
    path_ok("/x..y", "x..y");                 /* dots inside a name are fine */
    path_ok("/a/b..", "a/b..");
    path_ok("/name with space.txt", "name with space.txt");
    path_ok("/caf\xc3\xa9.txt", "caf\xc3\xa9.txt");   /* UTF-8 bytes are not control bytes */
}
END_TEST

START_TEST(check_path_refuses_dot_segments)
{
    path_bad("/..", -EINVAL);
    path_bad("/../etc/passwd", -EINVAL);
    path_bad("/a/../../etc/passwd", -EINVAL);
    path_bad("/a/..", -EINVAL);
    path_bad("/.", -EINVAL);
    path_bad("/./index.html", -EINVAL);
    path_bad("/a/./b", -EINVAL);
    path_bad("/.git/config", -EINVAL);        /* hidden segments */
    path_bad("/.env", -EINVAL);
    path_bad("/a/.hidden/b.css", -EINVAL);
    path_bad("/a/.htaccess", -EINVAL);
}
END_TEST

START_TEST(check_path_refuses_odd_bytes_and_shapes)
{
    path_bad("//etc/passwd", -EINVAL);        /* empty segment */
    path_bad("/a//b", -EINVAL);
    path_bad("/a\\..\\..\\etc\\passwd", -EINVAL);
    path_bad("/..\\meson.build", -EINVAL);
    path_bad("/a\\b", -EINVAL);
    path_bad("/a\x01" "b", -EINVAL);
    path_bad("/a\nb", -EINVAL);
    path_bad("/a\rb", -EINVAL);
    path_bad("/a\tb", -EINVAL);
    path_bad("/a\x7f", -EINVAL);
    path_bad("/a/", -EISDIR);
    path_bad("/dir/sub/", -EISDIR);
    path_bad("", -EINVAL);                    /* not absolute */
    path_bad("index.html", -EINVAL);
    path_bad(NULL, -EINVAL);
}
END_TEST

START_TEST(check_path_length_limits)
{
    char url[STATIC_PATH_MAX + 16];
    char rel[STATIC_PATH_MAX];

    /* STATIC_PATH_MAX - 1 characters: the longest accepted */
    url[0] = '/';
    memset(url + 1, 'a', STATIC_PATH_MAX - 2);
    url[STATIC_PATH_MAX - 1] = 0;
    ck_assert_int_eq(static_check_path(url, rel, sizeof(rel)), 0);
    ck_assert_uint_eq(strlen(rel), STATIC_PATH_MAX - 2);

    /* one more is too long */
    memset(url + 1, 'a', STATIC_PATH_MAX - 1);
    url[STATIC_PATH_MAX] = 0;
    ck_assert_int_eq(static_check_path(url, rel, sizeof(rel)), -ENAMETOOLONG);

    /* a small output buffer is respected, never overrun */
    char small[8];
    memset(small, 'Z', sizeof(small));
    ck_assert_int_eq(static_check_path("/abcdefghijk.css", small, 6), -ENAMETOOLONG);
    for (size_t i = 6; i < sizeof(small); i++)
        ck_assert_int_eq(small[i], 'Z');
    ck_assert_int_eq(static_check_path("/", small, 4), -ENAMETOOLONG);
    ck_assert_int_eq(static_check_path("/abc", small, 5), 0);    /* "abc" + NUL fits */
    ck_assert_str_eq(small, "abc");
}
END_TEST

/* ------------------------------------------------------------ static_open */

static char tmp[PATH_MAX];
static int root_fd = -1;

/* <tmp>/rel into out (PATH_MAX bytes) */
static void tpath(char *out, const char *rel)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", tmp, rel);
    ck_assert(n > 0 && n < PATH_MAX);
}

static void write_file(const char *rel, const char *text)
{
    char p[PATH_MAX];
    tpath(p, rel);
    FILE *f = fopen(p, "w");
    ck_assert_msg(f != NULL, "create %s: %s", p, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *rel)
{
    char p[PATH_MAX];
    tpath(p, rel);
    ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s: %s", p, strerror(errno));
}

static void make_link(const char *target, const char *rel)
{
    char p[PATH_MAX];
    tpath(p, rel);
    ck_assert_msg(symlink(target, p) == 0, "symlink %s: %s", p, strerror(errno));
}

static void tree_setup(void)
{
    const char *root = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/check-static.XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    write_file("outside.txt", "SECRET-OUTSIDE\n");
    make_dir("outside-dir");
    write_file("outside-dir/x.txt", "SECRET-DIR\n");
    make_dir("pub");
    write_file("pub/index.html", "<!doctype html><title>i</title>\n");
    make_dir("pub/a");
    make_dir("pub/a/b");
    write_file("pub/a/b/c.css", "body{}\n");
    make_dir("pub/dir");
    make_link("../outside.txt", "pub/link-file");
    make_link("../outside-dir", "pub/link-dir");
    make_link("..", "pub/a/link-up");
    make_link("/etc/passwd", "pub/passwd");
    char p[PATH_MAX];
    tpath(p, "pub/fifo");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    tpath(p, "pub");
    root_fd = static_open_root(p);
    ck_assert_int_ge(root_fd, 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tree_teardown(void)
{
    if (root_fd >= 0)
        close(root_fd);
    root_fd = -1;
    if (tmp[0])
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Opens rel and returns its content (static buffer) or fails the test. */
static const char *open_ok(const char *rel)
{
    static char buf[256];
    int fd = -1;
    struct stat st;
    int rc = static_open(root_fd, rel, &fd, &st);
    ck_assert_msg(rc == 0, "static_open(%s): %d", rel, rc);
    ck_assert_int_ge(fd, 0);
    ck_assert(S_ISREG(st.st_mode));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    ck_assert_int_ge(n, 0);
    ck_assert_int_eq(n, st.st_size);
    buf[n] = 0;
    close(fd);
    return buf;
}

static void open_refused(const char *rel)
{
    int fd = -12345;
    struct stat st;
    int rc = static_open(root_fd, rel, &fd, &st);
    ck_assert_msg(rc < 0, "static_open(%s) must be refused, got %d", rel, rc);
    ck_assert_msg(fd == -12345, "static_open(%s) set *ret_fd on failure", rel);
}

START_TEST(open_regular_files)
{
    ck_assert_str_eq(open_ok("index.html"), "<!doctype html><title>i</title>\n");
    ck_assert_str_eq(open_ok("a/b/c.css"), "body{}\n");
}
END_TEST

START_TEST(open_refuses_symlinks)
{
    int fd = -1;
    struct stat st;
    /* a symlink as the last component: -ELOOP as documented */
    ck_assert_int_eq(static_open(root_fd, "link-file", &fd, &st), -ELOOP);
    open_refused("passwd");
    /* a symlink as a directory component */
    open_refused("link-dir/x.txt");
    open_refused("a/link-up/index.html");
    open_refused("a/link-up/outside.txt");
    open_refused("a/link-up/a/b/c.css");
}
END_TEST

START_TEST(open_refuses_non_regular_and_missing)
{
    int fd = -1;
    struct stat st;
    /* a FIFO must neither be served nor block the opener */
    open_refused("fifo");
    open_refused("dir");
    open_refused("a");
    ck_assert_int_eq(static_open(root_fd, "nope.html", &fd, &st), -ENOENT);
    ck_assert_int_eq(static_open(root_fd, "a/nope/c.css", &fd, &st), -ENOENT);
    /* a file used as a directory */
    ck_assert_int_eq(static_open(root_fd, "index.html/x", &fd, &st), -ENOENT);
    open_refused("");
}
END_TEST

START_TEST(open_no_descriptor_leak)
{
    /* Failures at every depth close what they opened: the next descriptor
     * number is the same before and after many refused opens. */
    int probe = dup(0);
    ck_assert_int_ge(probe, 0);
    close(probe);
    for (int i = 0; i < 200; i++) {
        open_refused("a/link-up/index.html");
        open_refused("a/b/nope");
        open_refused("fifo");
        open_ok("a/b/c.css");
    }
    int probe2 = dup(0);
    ck_assert_int_eq(probe2, probe);
    close(probe2);
}
END_TEST

START_TEST(open_root_errors)
{
    ck_assert_int_eq(static_open_root("/nonexistent/flashgate/public"), -ENOENT);
    char p[PATH_MAX];
    tpath(p, "outside.txt");
    ck_assert_int_eq(static_open_root(p), -ENOTDIR);
}
END_TEST

/* ------------------------------------------------------------ static_mime */

START_TEST(mime_types)
{
    ck_assert_str_eq(static_mime("index.html"), "text/html; charset=utf-8");
    ck_assert_str_eq(static_mime("a/b/PAGE.HTM"), "text/html; charset=utf-8");
    ck_assert_str_eq(static_mime("app.css"), "text/css; charset=utf-8");
    ck_assert_str_eq(static_mime("sse-example.js"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(static_mime("data.json"), "application/json; charset=utf-8");
    ck_assert_str_eq(static_mime("favicon.svg"), "image/svg+xml");
    ck_assert_str_eq(static_mime("x.png"), "image/png");
    ck_assert_str_eq(static_mime("x.jpeg"), "image/jpeg");
    ck_assert_str_eq(static_mime("x.woff2"), "font/woff2");
    ck_assert_str_eq(static_mime("x.wasm"), "application/wasm");
    /* unknown or missing extensions */
    ck_assert_str_eq(static_mime("x.unknownext"), "application/octet-stream");
    ck_assert_str_eq(static_mime("Makefile"), "application/octet-stream");
    ck_assert_str_eq(static_mime("x."), "application/octet-stream");
    ck_assert_str_eq(static_mime("x.html.bak"), "application/octet-stream");
    /* a dot in a directory name is not an extension */
    ck_assert_str_eq(static_mime("v1.html/readme"), "application/octet-stream");
}
END_TEST

static Suite *static_suite(void)
{
    Suite *s = suite_create("static");
    TCase *t = tcase_create("check_path");
    tcase_add_test(t, check_path_accepts_normal_paths);
    tcase_add_test(t, check_path_refuses_dot_segments);
    tcase_add_test(t, check_path_refuses_odd_bytes_and_shapes);
    tcase_add_test(t, check_path_length_limits);
    suite_add_tcase(s, t);

    t = tcase_create("open");
    tcase_add_checked_fixture(t, tree_setup, tree_teardown);
    tcase_add_test(t, open_regular_files);
    tcase_add_test(t, open_refuses_symlinks);
    tcase_add_test(t, open_refuses_non_regular_and_missing);
    tcase_add_test(t, open_no_descriptor_leak);
    tcase_add_test(t, open_root_errors);
    suite_add_tcase(s, t);

    t = tcase_create("mime");
    tcase_add_test(t, mime_types);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(static_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
