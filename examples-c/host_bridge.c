/*
 * host_bridge.c — the host transport: the application moves WakuMessages through its own node.
 *
 *   make examples && build/examples/host_bridge
 *
 * A manager created with {"transport": {"kind": "host"}} never touches a network. It hands each
 * WakuMessage to publish to the host's send callback (rc_set_transport) together with a
 * dispatch id; the host publishes it through its Waku node and reports the outcome with
 * rc_transport_sent / rc_transport_failed. Every message the host's node receives on a
 * subscribed content topic goes to rc_transport_receive.
 *
 * Here the "Waku network" is simulated in this file: two hosts (alice and bob, one rc_manager
 * each), a relay that loses 25 % of the messages, and a store node that keeps everything. The
 * comments marked "real host:" say which libwaku (nwaku's library/libwaku.h) or liblogosdelivery
 * call a real application makes at that step.
 *
 * The program exits 0 once every message was DELIVERED and RECEIVED intact, 1 otherwise (or
 * after 60 seconds).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reliable_channel.h"

#define CHANNEL "ops"
#define TOPIC "/host-bridge/1/ops/proto"
#define PUBSUB_TOPIC "/waku/2/rs/1/0" /* real host: the shard your node relays or filters */
#define LOSS_PERCENT 25
#define STORE_QUERY_EVERY_MS 1000
#define OVERALL_TIMEOUT_MS 60000
#define MAX_SENDS 32

/* No "transport" details besides the kind: the host owns the network. Fast acknowledgements and
 * no rate limit so that the example finishes in seconds. (With RLN on The Waku Network, keep
 * rateLimitConfig on and set messagesPerEpoch to your membership's limit.) */
static const char *CONFIG =
    "{\"transport\": {\"kind\": \"host\", \"pubsubTopic\": \"" PUBSUB_TOPIC "\"},"
    " \"channelDefaults\": {"
    "   \"sdsConfig\": {\"acknowledgementTimeoutMs\": 500, \"maxRetransmissions\": 30,"
    "                   \"syncIntervalMs\": 1000, \"idleSyncRounds\": 5},"
    "   \"rateLimitConfig\": {\"enabled\": false}}}";

static double start_s;

static int64_t unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&out_lock);
    printf("[%6.2fs] ", now_s() - start_s);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

/* ------------------------------------------------------------------------------------------ */
/* The simulated Waku network                                                                 */

/* A WakuMessage owned by the host (rc_waku_message is only borrowed during a call). */
typedef struct wire_msg {
    struct wire_msg *next;
    char *content_topic;
    uint8_t *payload;
    size_t payload_len;
    uint8_t *meta;
    size_t meta_len;
    int64_t timestamp_ns;
    bool ephemeral;
    char hash[67]; /* "0x" + 64 hex */
} wire_msg;

/* A publish whose outcome the host reports later (like an asynchronous lightpush response). */
typedef struct pending_report {
    struct pending_report *next;
    uint64_t dispatch_id;
    char hash[67];
} pending_report;

typedef struct host_node {
    const char *name;
    rc_manager *mgr;
    struct host_node *peer;
    pthread_mutex_t lock; /* guards everything below */
    wire_msg *inbox, *inbox_tail; /* what the relay delivers to this node */
    pending_report *reports;
    uint64_t rng;
    double last_store_query;     /* monotonic seconds, to schedule the queries */
    int64_t store_cursor_ns;     /* Unix ns: the next query asks for messages since then */
    unsigned published, relay_dropped, reported_inline, reported_later, received, from_store;
    int transport_released; /* set by the finalizer rc_set_transport was given */
} host_node;

static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t net_changed = PTHREAD_COND_INITIALIZER;
static wire_msg *store_head, *store_tail; /* the store node: every non-ephemeral message */

static wire_msg *msg_copy(const rc_waku_message *m) {
    wire_msg *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->content_topic = strdup(m->content_topic);
    w->payload = malloc(m->payload_len ? m->payload_len : 1);
    w->meta = malloc(m->meta_len ? m->meta_len : 1);
    if (!w->content_topic || !w->payload || !w->meta) abort();
    if (m->payload_len) memcpy(w->payload, m->payload, m->payload_len);
    if (m->meta_len) memcpy(w->meta, m->meta, m->meta_len);
    w->payload_len = m->payload_len;
    w->meta_len = m->meta_len;
    w->timestamp_ns = m->timestamp_ns;
    w->ephemeral = m->ephemeral;
    return w;
}

static wire_msg *msg_dup(const wire_msg *w) {
    rc_waku_message m = {w->content_topic, w->payload, w->payload_len, w->meta, w->meta_len, w->timestamp_ns, w->ephemeral};
    wire_msg *c = msg_copy(&m);
    memcpy(c->hash, w->hash, sizeof c->hash);
    return c;
}

static void msg_free(wire_msg *w) {
    if (!w) return;
    free(w->content_topic);
    free(w->payload);
    free(w->meta);
    free(w);
}

/* The message hash. A real node computes the deterministic Waku message hash,
 * sha256(pubsub_topic | payload | content_topic | meta | timestamp), and hands it to you: in
 * the waku_relay_publish / waku_lightpush_publish callback and in the "messageHash" field of
 * every message event. This stand-in (FNV-1a in four lanes) only needs to be consistent. */
static void msg_hash(wire_msg *w) {
    uint64_t lane[4];
    for (int l = 0; l < 4; l++) {
        uint64_t h = 14695981039346656037ull ^ (uint64_t)(l + 1);
        const uint8_t *parts[4] = {(const uint8_t *)PUBSUB_TOPIC, w->payload, (const uint8_t *)w->content_topic, w->meta};
        size_t lens[4] = {strlen(PUBSUB_TOPIC), w->payload_len, strlen(w->content_topic), w->meta_len};
        for (int p = 0; p < 4; p++)
            for (size_t i = 0; i < lens[p]; i++) h = (h ^ parts[p][i]) * 1099511628211ull;
        lane[l] = h ^ (uint64_t)w->timestamp_ns;
    }
    snprintf(w->hash, sizeof w->hash, "0x%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, lane[0], lane[1],
             lane[2], lane[3]);
}

static unsigned rng_percent(host_node *n) {
    n->rng ^= n->rng << 13, n->rng ^= n->rng >> 7, n->rng ^= n->rng << 17;
    return (unsigned)(n->rng % 100);
}

/* ------------------------------------------------------------------------------------------ */
/* The host side of the bridge                                                                */

/* rc_transport_send_fn: the library asks us to publish `msg`. Runs on the manager's runtime
 * thread: do not block here (hand slow work to your node's own thread, as libwaku does). */
static int host_publish(void *user_data, uint64_t dispatch_id, const rc_waku_message *msg) {
    host_node *n = user_data;

    /* real host: encode msg as the node's JSON WakuMessage
     *   {"payload": base64(payload), "contentTopic": ..., "meta": base64(meta),
     *    "timestamp": timestamp_ns, "ephemeral": ...}
     * — keep `meta`: it carries the RELIABLE-CHANNEL-API/1 marker receivers filter on — and call
     *   waku_relay_publish(ctx, on_published, req, PUBSUB_TOPIC, json, timeoutMs)    (relay node)
     *   waku_lightpush_publish(ctx, on_published, req, PUBSUB_TOPIC, json)          (light node)
     *   logosdelivery_send(ctx, on_published, req, json)                 (liblogosdelivery)
     * keeping dispatch_id in `req` so that on_published can report the outcome. */
    wire_msg *w = msg_copy(msg);
    msg_hash(w);

    pthread_mutex_lock(&n->lock);
    n->published++;
    bool lost = rng_percent(n) < LOSS_PERCENT;
    if (lost) n->relay_dropped++;
    pthread_mutex_unlock(&n->lock);

    /* The network: the store node keeps every non-ephemeral message; the relay delivers the
     * message to the peer, or loses it. */
    pthread_mutex_lock(&net_lock);
    if (!w->ephemeral) {
        wire_msg *s = msg_dup(w);
        if (store_tail) store_tail->next = s; else store_head = s;
        store_tail = s;
    }
    pthread_mutex_unlock(&net_lock);
    if (!lost) {
        wire_msg *d = msg_dup(w);
        host_node *p = n->peer;
        pthread_mutex_lock(&p->lock);
        if (p->inbox_tail) p->inbox_tail->next = d; else p->inbox = d;
        p->inbox_tail = d;
        pthread_mutex_unlock(&p->lock);
    }

    /* Report the outcome. With the hash, SDS can later point peers at this message in the store.
     * real host: from on_published(callerRet, msg, len, req): RET_OK → rc_transport_sent with the
     * returned message hash; RET_ERR (no peers, timeout, RLN proof refused) →
     *   rc_transport_failed(mgr, dispatch_id, msg)   — the send then ends in SEND_ERROR.
     * Both may be called from inside this callback (when the node answers at once) or later from
     * any thread. We do half of each here, to show both. */
    if (dispatch_id % 2 == 1) {
        rc_status st = rc_transport_sent(n->mgr, dispatch_id, w->hash);
        if (st != RC_OK) say("%s: rc_transport_sent: %s (%s)", n->name, rc_status_name(st), rc_last_error());
        pthread_mutex_lock(&n->lock);
        n->reported_inline++;
        pthread_mutex_unlock(&n->lock);
    } else {
        pending_report *r = calloc(1, sizeof *r);
        if (!r) abort();
        r->dispatch_id = dispatch_id;
        memcpy(r->hash, w->hash, sizeof r->hash);
        pthread_mutex_lock(&n->lock);
        r->next = n->reports;
        n->reports = r;
        pthread_mutex_unlock(&n->lock);
    }
    msg_free(w);

    pthread_mutex_lock(&net_lock);
    pthread_cond_broadcast(&net_changed);
    pthread_mutex_unlock(&net_lock);
    return 0; /* non-zero would fail this dispatch at once */
}

/* rc_free_fn for the transport's user data: the library calls it once it no longer uses it
 * (on replacement or in rc_manager_free). */
static void host_released(void *user_data) {
    host_node *n = user_data;
    n->transport_released++;
}

static void to_rc(const wire_msg *w, rc_waku_message *m) {
    m->content_topic = w->content_topic;
    m->payload = w->payload;
    m->payload_len = w->payload_len;
    m->meta = w->meta;
    m->meta_len = w->meta_len;
    m->timestamp_ns = w->timestamp_ns;
    m->ephemeral = w->ephemeral;
}

/* One turn of the host's event loop for one node. Returns how much work it did. */
static int host_pump(host_node *n) {
    int work = 0;

    /* 1. Publishes that completed since the last turn (the asynchronous half).
     * real host: the lightpush / relay publish callback fires on the node's thread. */
    pthread_mutex_lock(&n->lock);
    pending_report *reports = n->reports;
    n->reports = NULL;
    pthread_mutex_unlock(&n->lock);
    while (reports) {
        pending_report *r = reports;
        reports = r->next;
        rc_status st = rc_transport_sent(n->mgr, r->dispatch_id, r->hash);
        if (st != RC_OK) say("%s: rc_transport_sent: %s (%s)", n->name, rc_status_name(st), rc_last_error());
        pthread_mutex_lock(&n->lock);
        n->reported_later++;
        pthread_mutex_unlock(&n->lock);
        free(r);
        work++;
    }

    /* 2. Messages the node received.
     * real host: the callback given to set_event_callback(ctx, cb, ud) (libwaku) or
     * logosdelivery_set_event_callback gets {"eventType": "message", "messageHash": "0x…",
     * "pubsubTopic": …, "wakuMessage": {…}} for every message on a subscribed topic
     * (waku_relay_subscribe(ctx, cb, ud, PUBSUB_TOPIC, TOPIC) on a relay node,
     * waku_filter_subscribe(ctx, cb, ud, PUBSUB_TOPIC, "[\"" TOPIC "\"]") on a light node,
     * logosdelivery_subscribe(ctx, cb, ud, TOPIC)). Decode payload and meta from base64 and
     * pass everything on; foreign traffic is filtered by the library. */
    pthread_mutex_lock(&n->lock);
    wire_msg *in = n->inbox;
    n->inbox = n->inbox_tail = NULL;
    pthread_mutex_unlock(&n->lock);
    while (in) {
        wire_msg *w = in;
        in = w->next;
        rc_waku_message m;
        to_rc(w, &m);
        rc_status st = rc_transport_receive(n->mgr, &m, w->hash); /* copied before it returns */
        if (st != RC_OK) say("%s: rc_transport_receive: %s (%s)", n->name, rc_status_name(st), rc_last_error());
        n->received++;
        msg_free(w);
        work++;
    }

    /* 3. Now and then, ask the store for what the relay may have lost.
     * real host: waku_store_query(ctx, cb, ud,
     *   "{\"includeData\": true, \"pubsubTopic\": \"" PUBSUB_TOPIC "\",
     *     \"contentTopics\": [\"" TOPIC "\"], \"timeStart\": <last query - margin, ns>,
     *     \"paginationForward\": true, \"paginationLimit\": 100}", storePeer, timeoutMs)
     * and hand every returned message (with its messageHash) to rc_transport_receive, as above.
     * Duplicates are expected and harmless: SDS drops what it already has. (SDS itself repairs
     * losses too — acknowledgements and retransmissions — so this is a speed-up, and it is how
     * a node that was offline catches up.) */
    double t = now_s();
    if (t - n->last_store_query >= STORE_QUERY_EVERY_MS / 1000.0) {
        int64_t since_ns = n->store_cursor_ns - 2000000000; /* 2 s overlap */
        n->last_store_query = t;
        n->store_cursor_ns = unix_ns();
        wire_msg *results = NULL, **tail = &results;
        pthread_mutex_lock(&net_lock);
        for (wire_msg *s = store_head; s; s = s->next) {
            if (strcmp(s->content_topic, TOPIC) != 0 || s->timestamp_ns < since_ns) continue;
            *tail = msg_dup(s);
            tail = &(*tail)->next;
        }
        pthread_mutex_unlock(&net_lock);
        while (results) {
            wire_msg *w = results;
            results = w->next;
            rc_waku_message m;
            to_rc(w, &m);
            if (rc_transport_receive(n->mgr, &m, w->hash) == RC_OK) n->from_store++;
            msg_free(w);
        }
    }
    return work;
}

/* ------------------------------------------------------------------------------------------ */
/* The application on top: a few messages each way, tracked until DELIVERED and RECEIVED.     */

typedef struct {
    char request_id[RC_REQUEST_ID_LEN + 1];
    const host_node *from;
    uint8_t *payload;
    size_t len;
    int delivered, received;
} send_record;

static pthread_mutex_t app_lock = PTHREAD_MUTEX_INITIALIZER;
static send_record sends[MAX_SENDS];
static int n_sends, failures;

static send_record *find_send(const char *rid) {
    for (int i = 0; i < n_sends; i++)
        if (rid && strcmp(sends[i].request_id, rid) == 0) return &sends[i];
    return NULL;
}

/* rc_event_fn: runs on the manager's event thread. */
static void on_event(const rc_event *ev, void *user_data) {
    host_node *me = user_data;
    pthread_mutex_lock(&app_lock);
    send_record *r = find_send(ev->request_id);
    switch (ev->kind) {
    case RC_EVENT_MESSAGE_RECEIVED:
        if (!r || r->received || r->len != ev->payload_len || memcmp(r->payload, ev->payload, r->len) != 0) {
            say("%-5s RECEIVED %.8s UNEXPECTED (duplicate, unknown or corrupted)", me->name, ev->request_id);
            failures++;
        } else {
            r->received = 1;
            if (ev->payload_len < 100)
                say("%-5s RECEIVED %.8s from %s: \"%.*s\"", me->name, ev->request_id, ev->sender_id,
                    (int)ev->payload_len, (const char *)ev->payload);
            else
                say("%-5s RECEIVED %.8s from %s: %zu bytes, intact", me->name, ev->request_id, ev->sender_id,
                    ev->payload_len);
        }
        break;
    case RC_EVENT_MESSAGE_SENT:
        say("%-5s SENT     %.8s", me->name, ev->request_id);
        break;
    case RC_EVENT_MESSAGE_DELIVERED:
        if (r) r->delivered = 1;
        say("%-5s DELIVERED %.8s", me->name, ev->request_id);
        break;
    case RC_EVENT_SEND_ERROR:
        say("%-5s SEND_ERROR %.8s: %s", me->name, ev->request_id, ev->error);
        failures++;
        break;
    case RC_EVENT_MESSAGE_LOST:
        say("%-5s MESSAGE_LOST: %s", me->name, ev->error);
        break;
    }
    pthread_mutex_unlock(&app_lock);
    pthread_mutex_lock(&net_lock);
    pthread_cond_broadcast(&net_changed);
    pthread_mutex_unlock(&net_lock);
}

static int app_send(host_node *n, const uint8_t *data, size_t len) {
    pthread_mutex_lock(&app_lock);
    send_record *r = &sends[n_sends];
    rc_status st = rc_send(n->mgr, CHANNEL, data, len, 0, r->request_id);
    if (st == RC_OK) {
        r->from = n;
        r->payload = malloc(len);
        if (!r->payload) abort();
        memcpy(r->payload, data, len);
        r->len = len;
        n_sends++;
    } else {
        say("%s: rc_send: %s (%s)", n->name, rc_status_name(st), rc_last_error());
    }
    pthread_mutex_unlock(&app_lock);
    return st == RC_OK ? 0 : -1;
}

static int setup(host_node *n) {
    rc_status st = rc_manager_new(CONFIG, &n->mgr);
    if (st != RC_OK) {
        fprintf(stderr, "%s: rc_manager_new: %s (%s)\n", n->name, rc_status_name(st), rc_last_error());
        return -1;
    }
    /* real host: create and start the node first (waku_new + waku_start, or
     * logosdelivery_create_node + logosdelivery_start_node), subscribe to TOPIC, set its event
     * callback; then install the bridge. */
    if ((st = rc_set_event_callback(n->mgr, on_event, n)) != RC_OK ||
        (st = rc_set_transport(n->mgr, host_publish, n, host_released)) != RC_OK ||
        (st = rc_open_channel(n->mgr, CHANNEL, TOPIC, n->name, NULL)) != RC_OK) {
        fprintf(stderr, "%s: setup: %s (%s)\n", n->name, rc_status_name(st), rc_last_error());
        return -1;
    }
    n->last_store_query = now_s();
    n->store_cursor_ns = unix_ns();
    return 0;
}

static int complete(void) {
    pthread_mutex_lock(&app_lock);
    int done = n_sends > 0;
    for (int i = 0; i < n_sends; i++) done = done && sends[i].delivered && sends[i].received;
    pthread_mutex_unlock(&app_lock);
    return done;
}

int main(void) {
    start_s = now_s();
    host_node alice = {.name = "alice", .rng = 0x9e3779b97f4a7c15ull},
              bob = {.name = "bob", .rng = 0xd1b54a32d192ed03ull};
    pthread_mutex_init(&alice.lock, NULL);
    pthread_mutex_init(&bob.lock, NULL);
    alice.peer = &bob;
    bob.peer = &alice;
    printf("libreliable_channel %s, host transport: the application relays every WakuMessage\n"
           "(simulated relay losing %d%% of messages, plus a store node).\n\n",
           rc_version(), LOSS_PERCENT);
    if (setup(&alice) != 0 || setup(&bob) != 0) return 1;

    const char *script[][2] = {
        {"alice", "deploy of v2.3 starts in 10 minutes"},
        {"bob", "ack, draining the eu-west pool"},
        {"alice", "eu-west drained?"},
        {"bob", "yes, 0 connections left"},
        {"alice", "rolling out"},
        {"bob", "watching the error rate"},
        {"alice", "done, all green"},
    };
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof script / sizeof script[0]; i++) {
        host_node *n = strcmp(script[i][0], "alice") == 0 ? &alice : &bob;
        ok = app_send(n, (const uint8_t *)script[i][1], strlen(script[i][1])) == 0;
    }
    /* A larger payload: 3 chunks of 100 KiB, each its own WakuMessage. */
    size_t big_len = 300 * 1024;
    uint8_t *big = malloc(big_len);
    if (!big) return 1;
    for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 31 + 7);
    ok = ok && app_send(&bob, big, big_len) == 0;
    free(big);

    /* The host's event loop. */
    double deadline = start_s + OVERALL_TIMEOUT_MS / 1000.0;
    int done = 0;
    while (ok && !(done = complete()) && now_s() < deadline) {
        pthread_mutex_lock(&app_lock);
        int f = failures;
        pthread_mutex_unlock(&app_lock);
        if (f) break;
        int work = host_pump(&alice) + host_pump(&bob);
        if (!work) { /* idle: wait for the next publish or event, at most 20 ms */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_mutex_lock(&net_lock);
            pthread_cond_timedwait(&net_changed, &net_lock, &ts);
            pthread_mutex_unlock(&net_lock);
        }
    }
    if (!done) say("not complete (%s)", now_s() >= deadline ? "timeout" : "failure");

    /* Free the managers first: after rc_manager_free returns, no callback runs any more, so the
     * queues below can be released safely. real host: then waku_stop + waku_destroy. */
    rc_status fa = rc_manager_free(alice.mgr), fb = rc_manager_free(bob.mgr);

    host_node *nodes[2] = {&alice, &bob};
    printf("\nSummary (%.2fs)\n", now_s() - start_s);
    for (int i = 0; i < 2; i++) {
        host_node *n = nodes[i];
        printf("  %-5s published %u (relay lost %u), reported sent %u inside the callback + %u later,"
               " received %u via relay + %u store results (duplicates, dropped by SDS, included);"
               " transport released %d time(s)\n",
               n->name, n->published, n->relay_dropped, n->reported_inline, n->reported_later, n->received,
               n->from_store, n->transport_released);
        while (n->inbox) {
            wire_msg *w = n->inbox;
            n->inbox = w->next;
            msg_free(w);
        }
        while (n->reports) {
            pending_report *r = n->reports;
            n->reports = r->next;
            free(r);
        }
        pthread_mutex_destroy(&n->lock);
    }
    while (store_head) {
        wire_msg *w = store_head;
        store_head = w->next;
        msg_free(w);
    }
    for (int i = 0; i < n_sends; i++) free(sends[i].payload);

    int success = ok && done && failures == 0 && fa == RC_OK && fb == RC_OK && alice.transport_released == 1 &&
                  bob.transport_released == 1;
    printf("%s\n", success ? "OK: every message DELIVERED and RECEIVED intact over the host transport." : "FAILED");
    return success ? 0 : 1;
}
