/* The optimizer journal. Format, durability and recovery rules are in
 * include/dspex/optim/journal.h; this file only implements them. */
#include "dspex/optim/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dspex/crc32c.h"

static const unsigned char FILE_MAGIC[8] = {'D', 'S', 'P', 'E', 'X', 'J', 'N', 'L'};
static const unsigned char REC_MAGIC[4] = {'D', 'X', 'J', 'R'};
#define REC_HEADER 24
#define SCAN_CHUNK 65536

struct dspex_journal {
    int fd;
    int broken;
    uint64_t end; /* valid end of file: where the next record goes */
    uint64_t seq; /* the next record's sequence number */
    uint32_t max_record;
    dspex_journal_io io;
    char path[200]; /* for messages; truncated if longer */
};

/* ---- small helpers --------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static int fail(dspex_journal_error *err, int code, int sys_errno, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(dspex_journal_error *err, int code, int sys_errno, uint64_t offset, const char *fmt, ...) {
    if (err != NULL) {
        err->code = code;
        err->sys_errno = sys_errno;
        err->offset = offset;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

static void clear_err(dspex_journal_error *err) {
    if (err != NULL) memset(err, 0, sizeof(*err));
}

/* ENOSPC, EDQUOT and EFBIG all mean "no room": the caller can free space and resume. */
static int write_code(int e) { return e == ENOSPC || e == EDQUOT || e == EFBIG ? DSPEX_JOURNAL_ENOSPC : DSPEX_JOURNAL_EIO; }

static uint32_t max_record_of(const dspex_journal_opts *o) {
    uint32_t m = o != NULL && o->max_record ? o->max_record : DSPEX_JOURNAL_DEFAULT_MAX_RECORD;
    return m > DSPEX_JOURNAL_MAX_RECORD_CAP ? DSPEX_JOURNAL_MAX_RECORD_CAP : m;
}

static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* ---- record encoding ------------------------------------------------------------- */

static void encode_header(unsigned char h[REC_HEADER], uint16_t type, uint64_t seq, uint32_t len) {
    memcpy(h, REC_MAGIC, 4);
    put32(h + 4, len);
    put64(h + 8, seq);
    h[16] = (unsigned char)type;
    h[17] = (unsigned char)(type >> 8);
    h[18] = h[19] = 0;
    put32(h + 20, dspex_crc32c(0, h, 20));
}

/* A header that can be trusted: magic, CRC, reserved bytes. Returns its fields. */
static int header_ok(const unsigned char h[REC_HEADER], uint32_t *len, uint64_t *seq, uint16_t *type) {
    if (memcmp(h, REC_MAGIC, 4) != 0) return 0;
    if (dspex_crc32c(0, h, 20) != get32(h + 20)) return 0;
    if (h[18] != 0 || h[19] != 0) return 0;
    *len = get32(h + 4);
    *seq = get64(h + 8);
    *type = (uint16_t)(h[16] | h[17] << 8);
    return 1;
}

/* ---- reading --------------------------------------------------------------------- */

typedef struct {
    unsigned char *buf;
    size_t cap;
} scan_buf;

static int grow(scan_buf *b, size_t n) {
    if (n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < n) cap *= 2;
    unsigned char *p = realloc(b->buf, cap);
    if (p == NULL) return -1;
    b->buf = p;
    b->cap = cap;
    return 0;
}

/* Reads the record at off expecting sequence number `seq`: 1 valid (payload in b),
 * 0 invalid, -1 read error (errno), -2 out of memory. */
static int read_record(int fd, uint64_t off, uint64_t size, uint64_t seq, uint32_t max_record, scan_buf *b,
                       dspex_journal_record *rec) {
    unsigned char h[REC_HEADER];
    if (size - off < REC_HEADER + 4) return 0;
    ssize_t r = pread_full(fd, h, REC_HEADER, off);
    if (r < 0) return -1;
    if (r < REC_HEADER) return 0;
    uint32_t len;
    uint64_t s;
    uint16_t type;
    if (!header_ok(h, &len, &s, &type)) return 0;
    if (len > max_record || s != seq) return 0;
    if (size - off - REC_HEADER < (uint64_t)len + 4) return 0;
    if (grow(b, (size_t)len + 4) != 0) return -2;
    r = pread_full(fd, b->buf, (size_t)len + 4, off + REC_HEADER);
    if (r < 0) return -1;
    if ((size_t)r < (size_t)len + 4) return 0;
    uint32_t crc = dspex_crc32c(dspex_crc32c(0, h, REC_HEADER), b->buf, len);
    if (crc != get32(b->buf + len)) return 0;
    rec->type = type;
    rec->seq = s;
    rec->offset = off;
    rec->payload = b->buf;
    rec->len = len;
    return 1;
}

/* Is there a valid COMMIT record with a sequence number above `seq` anywhere after
 * byte `from`? One pass over the rest of the file in fixed chunks. 1 yes, 0 no,
 * -1 read error, -2 out of memory. */
static int committed_after(int fd, uint64_t from, uint64_t size, uint64_t seq) {
    const size_t rec_len = REC_HEADER + 4; /* a commit has no payload */
    if (size < from + rec_len) return 0;
    unsigned char *chunk = malloc(SCAN_CHUNK + rec_len);
    if (chunk == NULL) return -2;
    int found = 0;
    uint64_t off = from;
    while (!found && off + rec_len <= size) {
        size_t want = SCAN_CHUNK + rec_len - 1;
        if (size - off < want) want = (size_t)(size - off);
        ssize_t r = pread_full(fd, chunk, want, off);
        if (r < 0) {
            found = -1;
            break;
        }
        size_t n = (size_t)r;
        if (n < rec_len) break;
        for (size_t i = 0; i + rec_len <= n; i++) {
            const unsigned char *c = memchr(chunk + i, REC_MAGIC[0], n - rec_len + 1 - i);
            if (c == NULL) break;
            i = (size_t)(c - chunk);
            uint32_t len;
            uint64_t s;
            uint16_t type;
            if (header_ok(c, &len, &s, &type) && type == DSPEX_JOURNAL_COMMIT && len == 0 && s > seq &&
                dspex_crc32c(0, c, REC_HEADER) == get32(c + REC_HEADER)) {
                found = 1;
                break;
            }
        }
        off += n - rec_len + 1; /* the next chunk overlaps by rec_len - 1 bytes */
    }
    free(chunk);
    return found;
}

int dspex_journal_scan_fd(int fd, const void *spec, size_t spec_len, const dspex_journal_opts *opts,
                          dspex_journal_visit visit, void *ctx, dspex_journal_info *info,
                          dspex_journal_error *err) {
    dspex_journal_info local;
    if (info == NULL) info = &local;
    memset(info, 0, sizeof(*info));
    clear_err(err);
    uint32_t max_record = max_record_of(opts);
    struct stat st;
    if (fstat(fd, &st) != 0) return fail(err, DSPEX_JOURNAL_EIO, errno, 0, "cannot stat the journal: %s", strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    info->file_bytes = size;
    unsigned char fh[DSPEX_JOURNAL_HEADER_BYTES];
    ssize_t r = size >= sizeof(fh) ? pread_full(fd, fh, sizeof(fh), 0) : 0;
    if (r < 0) return fail(err, DSPEX_JOURNAL_EIO, errno, 0, "cannot read the journal header: %s", strerror(errno));
    if (r < (ssize_t)sizeof(fh) || memcmp(fh, FILE_MAGIC, 8) != 0 || dspex_crc32c(0, fh, 12) != get32(fh + 12))
        return fail(err, DSPEX_JOURNAL_ENOTJOURNAL, 0, 0,
                    "not a DSPex optimizer journal (no valid \"DSPEXJNL\" header in the first 16 bytes)");
    if (get32(fh + 8) != DSPEX_JOURNAL_VERSION)
        return fail(err, DSPEX_JOURNAL_ENOTJOURNAL, 0, 8, "journal format version %u is not supported (this build reads version %u)",
                    get32(fh + 8), DSPEX_JOURNAL_VERSION);

    scan_buf b = {NULL, 0};
    int rc = DSPEX_JOURNAL_OK;
    uint64_t off = sizeof(fh), seq = 0;
    while (off < size) {
        dspex_journal_record rec;
        int v = read_record(fd, off, size, seq, max_record, &b, &rec);
        if (v == -1) {
            rc = fail(err, DSPEX_JOURNAL_EIO, errno, off, "read error at byte %llu of the journal: %s",
                      (unsigned long long)off, strerror(errno));
            break;
        }
        if (v == -2) {
            rc = fail(err, DSPEX_JOURNAL_ENOMEM, ENOMEM, off, "out of memory reading a journal record");
            break;
        }
        if (v == 0) {
            int c = committed_after(fd, off + 1, size, seq);
            if (c < 0) {
                rc = c == -1 ? fail(err, DSPEX_JOURNAL_EIO, errno, off, "read error scanning the journal: %s", strerror(errno))
                             : fail(err, DSPEX_JOURNAL_ENOMEM, ENOMEM, off, "out of memory scanning the journal");
            } else if (c > 0) {
                rc = fail(err, DSPEX_JOURNAL_ECORRUPT, 0, off,
                          "journal record %llu at byte %llu is damaged, but later records were committed: "
                          "the file was corrupted after it was written (restore it from a backup or start a new job)",
                          (unsigned long long)seq, (unsigned long long)off);
            }
            break; /* otherwise a torn tail: stop here */
        }
        if ((seq == 0) != (rec.type == DSPEX_JOURNAL_SPEC) ||
            (rec.type != DSPEX_JOURNAL_SPEC && rec.type != DSPEX_JOURNAL_COMMIT && rec.type < DSPEX_JOURNAL_USER)) {
            rc = fail(err, DSPEX_JOURNAL_ECORRUPT, 0, off,
                      seq == 0 ? "journal does not start with a spec record (record type %u at byte %llu)"
                               : "journal record type %u at byte %llu is not valid here",
                      rec.type, (unsigned long long)off);
            break;
        }
        if (seq == 0 && spec != NULL && (rec.len != spec_len || memcmp(rec.payload, spec, spec_len) != 0)) {
            size_t k = 0;
            while (k < rec.len && k < spec_len && rec.payload[k] == ((const unsigned char *)spec)[k]) k++;
            rc = fail(err, DSPEX_JOURNAL_ESPEC, 0, off + REC_HEADER + k,
                      "the journal belongs to a different job: its spec (%u bytes) differs from this job's "
                      "(%zu bytes) from byte %zu on; use a new journal path or the original job settings",
                      rec.len, spec_len, k);
            break;
        }
        info->records++;
        if (rec.type == DSPEX_JOURNAL_COMMIT) info->committed = info->records;
        off += REC_HEADER + (uint64_t)rec.len + 4;
        seq++;
        info->valid_bytes = off;
        info->next_seq = seq;
        if (rec.type >= DSPEX_JOURNAL_USER) {
            info->user_records++;
            if (visit != NULL && visit(ctx, &rec) != 0) {
                rc = fail(err, DSPEX_JOURNAL_ESTOP, 0, rec.offset, "reading stopped by the caller at record %llu",
                          (unsigned long long)rec.seq);
                break;
            }
        }
    }
    free(b.buf);
    if (rc == DSPEX_JOURNAL_OK && info->records == 0)
        rc = fail(err, DSPEX_JOURNAL_ECORRUPT, 0, sizeof(fh), "the journal has no valid spec record");
    if (rc == DSPEX_JOURNAL_OK) {
        if (info->valid_bytes == 0) info->valid_bytes = sizeof(fh);
        info->torn_bytes = size - info->valid_bytes;
    }
    return rc;
}

int dspex_journal_read(const char *path, const void *spec, size_t spec_len, const dspex_journal_opts *opts,
                       dspex_journal_visit visit, void *ctx, dspex_journal_info *info,
                       dspex_journal_error *err) {
    clear_err(err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errno == ENOENT ? DSPEX_JOURNAL_ENOENT : DSPEX_JOURNAL_EIO, errno, 0,
                    "cannot open journal %.200s: %s", path, strerror(errno));
    int rc = dspex_journal_scan_fd(fd, spec, spec_len, opts, visit, ctx, info, err);
    close(fd);
    return rc;
}

/* ---- writing --------------------------------------------------------------------- */

static ssize_t io_pwrite(const dspex_journal_io *io, int fd, const void *buf, size_t n, off_t off) {
    return io->pwrite ? io->pwrite(io->ctx, fd, buf, n, off) : pwrite(fd, buf, n, off);
}
static int io_fdatasync(const dspex_journal_io *io, int fd) {
    return io->fdatasync ? io->fdatasync(io->ctx, fd) : fdatasync(fd);
}
static int io_ftruncate(const dspex_journal_io *io, int fd, off_t len) {
    return io->ftruncate ? io->ftruncate(io->ctx, fd, len) : ftruncate(fd, len);
}

/* Writes all of buf at off; 0 or -1 with errno. A short write with no error (a full
 * disk, a file size limit) is retried once so the second call reports the errno. */
static int write_all(const dspex_journal_io *io, int fd, const void *buf, size_t n, uint64_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = io_pwrite(io, fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* Writes one record at j->end. On failure, cuts the file back to j->end so the journal
 * stays exactly as it was; if that fails too, the handle is broken. */
static int write_record(dspex_journal *j, uint16_t type, const void *payload, size_t len, dspex_journal_error *err) {
    unsigned char h[REC_HEADER], t[4];
    encode_header(h, type, j->seq, (uint32_t)len);
    put32(t, dspex_crc32c(dspex_crc32c(0, h, REC_HEADER), payload, len));
    uint64_t off = j->end;
    if (write_all(&j->io, j->fd, h, REC_HEADER, off) != 0 ||
        (len && write_all(&j->io, j->fd, payload, len, off + REC_HEADER) != 0) ||
        write_all(&j->io, j->fd, t, 4, off + REC_HEADER + len) != 0) {
        int e = errno;
        if (io_ftruncate(&j->io, j->fd, (off_t)j->end) != 0) j->broken = 1;
        return fail(err, write_code(e), e, off,
                    "journal %s: writing record %llu failed: %s; the journal is intact up to byte %llu%s", j->path,
                    (unsigned long long)j->seq, strerror(e), (unsigned long long)j->end,
                    j->broken ? " (the partial record could not be removed: reopen the journal)" : "");
    }
    j->end = off + REC_HEADER + len + 4;
    j->seq++;
    return DSPEX_JOURNAL_OK;
}

int dspex_journal_append(dspex_journal *j, uint16_t type, const void *payload, size_t len,
                         dspex_journal_error *err) {
    clear_err(err);
    if (j == NULL || type < DSPEX_JOURNAL_USER || (payload == NULL && len > 0))
        return fail(err, DSPEX_JOURNAL_EINVAL, 0, 0, "journal append: bad arguments (record types start at %d)",
                    DSPEX_JOURNAL_USER);
    if (j->broken)
        return fail(err, DSPEX_JOURNAL_EBROKEN, 0, j->end,
                    "journal %s: an earlier write or sync failed and could not be undone; reopen the journal", j->path);
    if (len > j->max_record)
        return fail(err, DSPEX_JOURNAL_ELIMIT, 0, j->end, "journal record of %zu bytes exceeds the %u-byte limit", len,
                    j->max_record);
    return write_record(j, type, payload, len, err);
}

int dspex_journal_sync(dspex_journal *j, dspex_journal_error *err) {
    clear_err(err);
    if (j == NULL) return fail(err, DSPEX_JOURNAL_EINVAL, 0, 0, "journal sync: no journal");
    if (j->broken)
        return fail(err, DSPEX_JOURNAL_EBROKEN, 0, j->end,
                    "journal %s: an earlier write or sync failed and could not be undone; reopen the journal", j->path);
    int rc = write_record(j, DSPEX_JOURNAL_COMMIT, NULL, 0, err);
    if (rc != DSPEX_JOURNAL_OK) return rc;
    if (io_fdatasync(&j->io, j->fd) != 0) {
        /* After a failed fsync the kernel may have dropped the dirty pages: nothing
         * written since the last good sync can be trusted, so stop writing. */
        int e = errno;
        j->broken = 1;
        return fail(err, write_code(e), e, j->end,
                    "journal %s: fdatasync failed: %s; records since the last successful sync may be lost; "
                    "reopen the journal to resume from what is on disk",
                    j->path, strerror(e));
    }
    return DSPEX_JOURNAL_OK;
}

uint64_t dspex_journal_size(const dspex_journal *j) { return j->end; }

void dspex_journal_close(dspex_journal *j) {
    if (j == NULL) return;
    if (j->fd >= 0) close(j->fd); /* also releases the flock */
    free(j);
}

/* fsync the directory holding `path`, so a new directory entry is durable. */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    int rc = fsync(dfd);
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

/* Creates the journal atomically: header, spec and commit written to a temporary file
 * and synced, then linked to `path` (link fails if path exists, so two creators cannot
 * both win). Returns the open descriptor, -1 with err set, or -2 if path appeared. */
static int create_file(dspex_journal *j, const char *path, const void *spec, size_t spec_len, dspex_journal_error *err) {
    char tmp[4200];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld-%ld", path, (long)getpid(), (long)ts.tv_nsec);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        fail(err, DSPEX_JOURNAL_EINVAL, ENAMETOOLONG, 0, "journal path too long");
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail(err, write_code(errno), errno, 0, "cannot create journal %s: %s", j->path, strerror(errno));
        return -1;
    }
    unsigned char fh[DSPEX_JOURNAL_HEADER_BYTES];
    memcpy(fh, FILE_MAGIC, 8);
    put32(fh + 8, DSPEX_JOURNAL_VERSION);
    put32(fh + 12, dspex_crc32c(0, fh, 12));
    j->fd = fd;
    j->end = 0;
    j->seq = 0;
    int linked = 0;
    if (write_all(&j->io, fd, fh, sizeof(fh), 0) != 0) {
        fail(err, write_code(errno), errno, 0, "cannot write journal %s: %s", j->path, strerror(errno));
        goto bad;
    }
    j->end = sizeof(fh);
    if (write_record(j, DSPEX_JOURNAL_SPEC, spec, spec_len, err) != 0) goto bad;
    if (write_record(j, DSPEX_JOURNAL_COMMIT, NULL, 0, err) != 0) goto bad;
    if (fsync(fd) != 0) {
        fail(err, write_code(errno), errno, 0, "cannot sync new journal %s: %s", j->path, strerror(errno));
        goto bad;
    }
    if (link(tmp, path) == 0) {
        linked = 1;
    } else if (errno == EEXIST) {
        unlink(tmp);
        close(fd);
        j->fd = -1;
        return -2;
    } else if (rename(tmp, path) != 0) { /* a file system without hard links */
        fail(err, DSPEX_JOURNAL_EIO, errno, 0, "cannot create journal %s: %s", j->path, strerror(errno));
        goto bad;
    }
    if (linked) unlink(tmp);
    if (sync_dir(path) != 0) {
        fail(err, write_code(errno), errno, 0, "cannot sync the directory of journal %s: %s", j->path, strerror(errno));
        close(fd);
        j->fd = -1;
        return -1;
    }
    return fd;
bad:
    unlink(tmp);
    close(fd);
    j->fd = -1;
    return -1;
}

int dspex_journal_open(const char *path, const void *spec, size_t spec_len, const dspex_journal_opts *opts,
                       dspex_journal_visit visit, void *ctx, dspex_journal **out, dspex_journal_info *info,
                       dspex_journal_error *err) {
    dspex_journal_info local;
    if (info == NULL) info = &local;
    memset(info, 0, sizeof(*info));
    clear_err(err);
    *out = NULL;
    if (path == NULL || (spec == NULL && spec_len > 0))
        return fail(err, DSPEX_JOURNAL_EINVAL, 0, 0, "journal open: bad arguments");
    dspex_journal *j = calloc(1, sizeof(*j));
    if (j == NULL) return fail(err, DSPEX_JOURNAL_ENOMEM, ENOMEM, 0, "out of memory opening a journal");
    j->fd = -1;
    j->max_record = max_record_of(opts);
    if (opts != NULL && opts->io != NULL) j->io = *opts->io;
    snprintf(j->path, sizeof(j->path), "%s", path);
    if (spec_len > j->max_record) {
        uint32_t limit = j->max_record;
        free(j);
        return fail(err, DSPEX_JOURNAL_ELIMIT, 0, 0, "job spec of %zu bytes exceeds the %u-byte record limit", spec_len,
                    limit);
    }
    int rc = DSPEX_JOURNAL_OK;
    for (int attempt = 0; attempt < 3 && j->fd < 0; attempt++) {
        j->fd = open(path, O_RDWR | O_CLOEXEC);
        if (j->fd >= 0) break;
        if (errno != ENOENT) {
            rc = fail(err, DSPEX_JOURNAL_EIO, errno, 0, "cannot open journal %s: %s", j->path, strerror(errno));
            break;
        }
        int fd = create_file(j, path, spec, spec_len, err);
        if (fd == -1) {
            rc = err != NULL ? err->code : DSPEX_JOURNAL_EIO;
            break;
        }
        if (fd >= 0) {
            j->fd = fd;
            if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
                rc = fail(err, DSPEX_JOURNAL_EBUSY, errno, 0, "journal %s is open in another process", j->path);
                break;
            }
            info->records = info->committed = 2;
            info->next_seq = j->seq;
            info->valid_bytes = info->file_bytes = j->end;
            *out = j;
            return DSPEX_JOURNAL_OK;
        }
        /* -2: someone else created it meanwhile; open theirs */
    }
    if (rc == DSPEX_JOURNAL_OK && j->fd < 0)
        rc = fail(err, DSPEX_JOURNAL_EIO, ENOENT, 0, "cannot open or create journal %s", j->path);
    if (rc == DSPEX_JOURNAL_OK && flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        rc = fail(err, errno == EWOULDBLOCK ? DSPEX_JOURNAL_EBUSY : DSPEX_JOURNAL_EIO, errno, 0,
                  "journal %s is open for writing in another process (an optimizer job still running?)", j->path);
    if (rc == DSPEX_JOURNAL_OK) rc = dspex_journal_scan_fd(j->fd, spec, spec_len, opts, visit, ctx, info, err);
    if (rc == DSPEX_JOURNAL_OK && info->torn_bytes > 0) {
        /* Cut the torn tail now, or the next append would leave damage mid-file. */
        if (io_ftruncate(&j->io, j->fd, (off_t)info->valid_bytes) != 0 || io_fdatasync(&j->io, j->fd) != 0)
            rc = fail(err, write_code(errno), errno, info->valid_bytes,
                      "journal %s: cannot remove the torn last record (%llu bytes): %s", j->path,
                      (unsigned long long)info->torn_bytes, strerror(errno));
    }
    if (rc != DSPEX_JOURNAL_OK) {
        dspex_journal_close(j);
        return rc;
    }
    j->end = info->valid_bytes;
    j->seq = info->next_seq;
    *out = j;
    return DSPEX_JOURNAL_OK;
}
