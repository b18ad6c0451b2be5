/*
 * smoke.c — a small C program built against an installed libreliable_channel (tests/install):
 * checks that the header matches the library, then two managers exchange one encrypted
 * message on the embedded network. Exits 0 when it was received intact and delivered.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <reliable_channel.h>

#define CHANNEL "smoke"
#define TOPIC "/install-smoke/1/smoke/proto"
#define MESSAGE "installed and linked"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int received, delivered, failed;

static void on_event(const rc_event *e, void *user_data) {
    (void)user_data;
    pthread_mutex_lock(&lock);
    if (e->kind == RC_EVENT_MESSAGE_RECEIVED) {
        received = e->payload_len == strlen(MESSAGE) && memcmp(e->payload, MESSAGE, e->payload_len) == 0 ? 1 : -1;
    } else if (e->kind == RC_EVENT_MESSAGE_DELIVERED) {
        delivered = 1;
    } else if (e->kind == RC_EVENT_SEND_ERROR) {
        failed = 1;
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* A toy cipher (XOR): only shows the hook. */
static int xor_crypt(void *user_data, const char *channel_id, const uint8_t *in, size_t len, rc_buffer *out) {
    (void)user_data;
    (void)channel_id;
    uint8_t buf[4096];
    for (size_t off = 0; off < len; off += sizeof buf) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = in[off + i] ^ 0x5a;
        if (rc_buffer_append(out, buf, n) != RC_OK) return 1;
    }
    return 0;
}

static rc_manager *start(const char *sender) {
    const char *cfg =
        "{\"transport\": {\"kind\": \"memory\", \"network\": \"install-smoke\"},"
        " \"channelDefaults\": {\"sdsConfig\": {\"acknowledgementTimeoutMs\": 400},"
        " \"rateLimitConfig\": {\"enabled\": false}}}";
    rc_manager *m = NULL;
    if (rc_manager_new(cfg, &m) != RC_OK || rc_set_event_callback(m, on_event, NULL) != RC_OK ||
        rc_open_channel(m, CHANNEL, TOPIC, sender, NULL) != RC_OK ||
        rc_set_encryption(m, NULL, xor_crypt, xor_crypt, NULL, NULL) != RC_OK) {
        fprintf(stderr, "smoke: setting up %s: %s\n", sender, rc_last_error());
        return NULL;
    }
    return m;
}

int main(void) {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", RC_VERSION_MAJOR, RC_VERSION_MINOR, RC_VERSION_PATCH);
    if (strcmp(expected, rc_version()) != 0) {
        fprintf(stderr, "smoke: header says %s, library says %s\n", expected, rc_version());
        return 1;
    }
    rc_manager *alice = start("alice");
    rc_manager *bob = start("bob");
    if (!alice || !bob) return 1;
    char request_id[RC_REQUEST_ID_LEN + 1];
    if (rc_send(alice, CHANNEL, (const uint8_t *)MESSAGE, strlen(MESSAGE), 0, request_id) != RC_OK) {
        fprintf(stderr, "smoke: rc_send: %s\n", rc_last_error());
        return 1;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&lock);
    int timed_out = 0;
    while (!(received && delivered) && !failed && !timed_out) {
        timed_out = pthread_cond_timedwait(&changed, &lock, &deadline) != 0;
    }
    int ok = received == 1 && delivered && !failed;
    pthread_mutex_unlock(&lock);
    if (rc_manager_free(alice) != RC_OK || rc_manager_free(bob) != RC_OK) return 1;
    printf("smoke: libreliable_channel %s: %s %s\n", rc_version(), request_id,
           ok ? "received and delivered" : (timed_out ? "timed out" : "failed"));
    return ok ? 0 : 1;
}
