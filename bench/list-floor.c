/* The floor for `passthru list` (bench/list-vs-lspci.sh): the same facts read with the fewest system calls a program
 * can use, and nothing else: for each function under DEVICES_DIR, its modalias (IDs and class; vendor, device and
 * class where there is none) and revision (one open and one read each, relative to the directory held open) and its
 * driver, IOMMU group and physfn links (one readlinkat each), printed raw, without names. Usage: list-floor DEVICES_DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int attr(int dir, const char *dev, const char *name, char *out, int size) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dev, name);
    int fd = openat(dir, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    int n = read(fd, out, size - 1);
    close(fd);
    if (n < 0) return -1;
    while (n > 0 && out[n - 1] == '\n') n--;
    out[n] = 0;
    return n;
}

static const char *link_name(int dir, const char *dev, const char *name, char *out, int size) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dev, name);
    int n = readlinkat(dir, path, out, size - 1);
    if (n < 0) return "-";
    out[n] = 0;
    char *slash = strrchr(out, '/');
    return slash ? slash + 1 : out;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: list-floor DEVICES_DIR\n"); return 2; }
    DIR *d = opendir(argv[1]);
    if (!d) { perror(argv[1]); return 1; }
    int dir = dirfd(d);
    struct dirent *e;
    char v[64], dv[64], c[64], r[64], drv[4096], grp[4096], pf[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (attr(dir, e->d_name, "modalias", v, sizeof v) < 0) {
            attr(dir, e->d_name, "vendor", v, sizeof v);
            attr(dir, e->d_name, "device", dv, sizeof dv);
            attr(dir, e->d_name, "class", c, sizeof c);
        } else dv[0] = c[0] = 0;
        attr(dir, e->d_name, "revision", r, sizeof r);
        printf("%s %s %s:%s rev %s driver=%s group=%s physfn=%s\n", e->d_name, c, v, dv, r,
               link_name(dir, e->d_name, "driver", drv, sizeof drv), link_name(dir, e->d_name, "iommu_group", grp, sizeof grp),
               link_name(dir, e->d_name, "physfn", pf, sizeof pf));
    }
    return 0;
}
