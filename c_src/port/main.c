/* dspex_port: placeholder main until the provider I/O loop lands.
 * Reads {packet,4} ETF frames on stdin; answers {ping, Id} with {pong, Id};
 * exits 0 on stdin EOF. */
#include <ei.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_exact(unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(STDIN_FILENO, buf + got, len - got);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_exact(const char *buf, size_t len) {
    size_t put = 0;
    while (put < len) {
        ssize_t n = write(STDOUT_FILENO, buf + put, len - put);
        if (n <= 0) return -1;
        put += (size_t)n;
    }
    return 0;
}

int main(void) {
    ei_init();
    for (;;) {
        unsigned char hdr[4];
        if (read_exact(hdr, 4) != 0) return 0;
        uint32_t len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
        if (len > (64u << 20)) return 2;
        char *frame = malloc(len ? len : 1);
        if (frame == NULL) return 3;
        if (read_exact((unsigned char *)frame, len) != 0) {
            free(frame);
            return 0;
        }
        int idx = 0, ver = 0, arity = 0;
        char atom[MAXATOMLEN] = {0};
        long long id = 0;
        if (ei_decode_version(frame, &idx, &ver) == 0 && ei_decode_tuple_header(frame, &idx, &arity) == 0 &&
            arity == 2 && ei_decode_atom(frame, &idx, atom) == 0 && strcmp(atom, "ping") == 0 &&
            ei_decode_longlong(frame, &idx, &id) == 0) {
            ei_x_buff out;
            if (ei_x_new_with_version(&out) == 0) {
                ei_x_encode_tuple_header(&out, 2);
                ei_x_encode_atom(&out, "pong");
                ei_x_encode_longlong(&out, id);
                unsigned char olen[4] = {(unsigned char)(out.index >> 24), (unsigned char)(out.index >> 16),
                                         (unsigned char)(out.index >> 8), (unsigned char)out.index};
                if (write_exact((const char *)olen, 4) != 0 || write_exact(out.buff, (size_t)out.index) != 0) {
                    ei_x_free(&out);
                    free(frame);
                    return 0;
                }
                ei_x_free(&out);
            }
        } else {
            fprintf(stderr, "dspex_port: unknown frame ignored\n");
        }
        free(frame);
    }
}
