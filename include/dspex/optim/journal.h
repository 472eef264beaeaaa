/* The optimizer journal: an append-only file of checksummed records that lets a
 * long optimization job survive a crash (kill -9, power loss, full disk) and resume
 * without redoing finished work. Payloads are opaque bytes to C (the engine stores its
 * job spec, trials, scores and best program in them; docs/optimizer-engine.md).
 *
 * Format (all integers little-endian):
 *
 *   file header, 16 bytes:  "DSPEXJNL" | u32 version = 1 | u32 crc32c(bytes 0..11)
 *   record, 28 + len bytes: u32 magic "DXJR" (bytes 44 58 4A 52)
 *                           u32 len          payload bytes (<= max_record)
 *                           u64 seq          0 for the spec record, then +1 per record
 *                           u16 type         DSPEX_JOURNAL_SPEC, _COMMIT, or >= _USER
 *                           u16 reserved = 0
 *                           u32 header crc   crc32c of the 20 bytes above
 *                           len bytes        payload
 *                           u32 record crc   crc32c of the 24-byte header and payload
 *
 * CRC-32C is the Castagnoli CRC (include/dspex/crc32c.h). A journal is created
 * atomically (written to a temporary file, synced, then linked into place) with the
 * header, the spec record (seq 0) and a commit record, so a journal that exists always
 * has its spec (a crash during creation can leave a "<path>.tmp-<pid>-<ns>" file behind,
 * never a partial journal).
 *
 * Durability: dspex_journal_append only writes; dspex_journal_sync appends a COMMIT
 * record and fdatasyncs. Everything up to a commit that sync reported as done survives
 * a crash. Records after the last commit may or may not survive, whole or torn.
 *
 * Reading classifies the first invalid record (bad magic or CRC, length over
 * max_record, wrong sequence number, short file) at byte X:
 *   - torn tail: no valid COMMIT record starts anywhere after X. The records before X
 *     are delivered, the bytes from X on are ignored and reported (info.torn_bytes);
 *     opening for append truncates them.
 *   - corruption: a valid COMMIT with a higher sequence number follows X, so X was once
 *     synced and has since been damaged: DSPEX_JOURNAL_ECORRUPT with the offset.
 * A payload that happens to contain a byte-exact COMMIT record can make a torn tail
 * look like corruption (an error, never a wrong record accepted).
 *
 * Memory while reading is one buffer of at most max_record + 28 bytes, whatever the
 * file holds; work is linear in the file size. Write errors (ENOSPC, EDQUOT, EFBIG,
 * EIO) are reported with errno; the partial record is truncated away so the file stays
 * readable, and if even that fails, or fdatasync fails (after which the kernel's view
 * of the file cannot be trusted), the handle refuses further writes (EBROKEN) and the
 * file on disk still reads back up to its last good record. One writer at a time: an
 * open journal holds an exclusive flock. Pure C over POSIX; no global state. */
#ifndef DSPEX_OPTIM_JOURNAL_H
#define DSPEX_OPTIM_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DSPEX_JOURNAL_VERSION 1
#define DSPEX_JOURNAL_HEADER_BYTES 16
#define DSPEX_JOURNAL_RECORD_OVERHEAD 28
/* Default and largest allowed max_record (payload bytes). */
#define DSPEX_JOURNAL_DEFAULT_MAX_RECORD (16u << 20)
#define DSPEX_JOURNAL_MAX_RECORD_CAP (256u << 20)

/* Record types. Callers use DSPEX_JOURNAL_USER and above (the engine's are in
 * docs/optimizer-engine.md). */
enum {
    DSPEX_JOURNAL_SPEC = 1,
    DSPEX_JOURNAL_COMMIT = 2,
    DSPEX_JOURNAL_USER = 16,
};

enum {
    DSPEX_JOURNAL_OK = 0,
    DSPEX_JOURNAL_EIO = -1,         /* a read, write or sync failed (errno in err->sys_errno) */
    DSPEX_JOURNAL_ENOSPC = -2,      /* disk full, quota, or file size limit (ENOSPC/EDQUOT/EFBIG) */
    DSPEX_JOURNAL_ENOTJOURNAL = -3, /* not a DSPex journal, or an unsupported version */
    DSPEX_JOURNAL_ECORRUPT = -4,    /* damage before committed records, or no spec record */
    DSPEX_JOURNAL_ESPEC = -5,       /* the journal was written for a different job spec */
    DSPEX_JOURNAL_EBUSY = -6,       /* another process has it open for writing */
    DSPEX_JOURNAL_EBROKEN = -7,     /* an earlier failure could not be undone: reopen */
    DSPEX_JOURNAL_EINVAL = -8,
    DSPEX_JOURNAL_ENOMEM = -9,
    DSPEX_JOURNAL_ELIMIT = -10, /* payload over max_record */
    DSPEX_JOURNAL_ESTOP = -11,  /* the visitor returned non-zero */
    DSPEX_JOURNAL_ENOENT = -12, /* no journal at that path (dspex_journal_read) */
};

typedef struct {
    int code;         /* one of the codes above */
    int sys_errno;    /* the errno behind EIO/ENOSPC/ENOENT, else 0 */
    uint64_t offset;  /* byte offset the error is about, when there is one */
    char message[256];
} dspex_journal_error;

/* I/O used for writing; NULL members mean the POSIX call. For fault injection in tests
 * and for callers that wrap I/O. Each returns what the POSIX call returns, setting errno. */
typedef struct {
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, off_t len);
    void *ctx;
} dspex_journal_io;

typedef struct {
    uint32_t max_record;         /* 0 = DSPEX_JOURNAL_DEFAULT_MAX_RECORD */
    const dspex_journal_io *io;  /* NULL = POSIX */
} dspex_journal_opts;

typedef struct {
    uint16_t type;
    uint64_t seq;
    uint64_t offset; /* of the record's first byte */
    const unsigned char *payload; /* valid only during the visit */
    uint32_t len;
} dspex_journal_record;

/* Called once per valid record of type >= DSPEX_JOURNAL_USER, in order. Non-zero stops
 * the read with DSPEX_JOURNAL_ESTOP. If the read then fails (ECORRUPT), the records
 * already visited must be discarded. */
typedef int (*dspex_journal_visit)(void *ctx, const dspex_journal_record *rec);

typedef struct {
    uint64_t records;      /* valid records, spec and commits included */
    uint64_t user_records; /* of them, visited (type >= USER) */
    uint64_t committed;    /* valid records up to and including the last commit */
    uint64_t next_seq;     /* the sequence number the next record gets */
    uint64_t valid_bytes;  /* end of the last valid record */
    uint64_t file_bytes;
    uint64_t torn_bytes; /* file_bytes - valid_bytes: a torn tail, ignored (and truncated on open) */
} dspex_journal_info;

typedef struct dspex_journal dspex_journal;

/* Reads a journal from an open descriptor (pread; the offset is not moved). If
 * `spec` is not NULL the spec record must equal it byte for byte (else ESPEC). */
int dspex_journal_scan_fd(int fd, const void *spec, size_t spec_len, const dspex_journal_opts *opts,
                          dspex_journal_visit visit, void *ctx, dspex_journal_info *info,
                          dspex_journal_error *err);
/* The same for a path, read-only, no lock (inspecting a journal another process may be
 * writing reads a consistent prefix). ENOENT if the file does not exist. */
int dspex_journal_read(const char *path, const void *spec, size_t spec_len, const dspex_journal_opts *opts,
                       dspex_journal_visit visit, void *ctx, dspex_journal_info *info,
                       dspex_journal_error *err);

/* Opens `path` for appending. A missing file is created with this spec (info->records
 * == 2: spec and commit). An existing one is read (visit sees its records), must hold
 * the same spec, has a torn tail truncated (and synced), and is appended to after its
 * last valid record. */
int dspex_journal_open(const char *path, const void *spec, size_t spec_len, const dspex_journal_opts *opts,
                       dspex_journal_visit visit, void *ctx, dspex_journal **out, dspex_journal_info *info,
                       dspex_journal_error *err);
/* Writes one record (type >= DSPEX_JOURNAL_USER); durable only after the next sync. */
int dspex_journal_append(dspex_journal *j, uint16_t type, const void *payload, size_t len,
                         dspex_journal_error *err);
/* Appends a COMMIT record and fdatasyncs: every record so far is durable on success. */
int dspex_journal_sync(dspex_journal *j, dspex_journal_error *err);
/* Bytes in the journal (its valid end). */
uint64_t dspex_journal_size(const dspex_journal *j);
/* Closes (without syncing: sync first to keep the last records). NULL is fine. */
void dspex_journal_close(dspex_journal *j);

#endif
