/* C glue between the Go package and libreliable_channel: see shim.h. */
#include <string.h>

#include "shim.h"
#include "_cgo_export.h"

static __thread uintptr_t current_token;

uintptr_t rcgo_current(void) { return current_token; }

uintptr_t rcgo_swap_current(uintptr_t token) {
    uintptr_t prev = current_token;
    current_token = token;
    return prev;
}

static rc_status check(rc_status st, char **err) {
    if (st != RC_OK && err != NULL) {
        *err = strdup(rc_last_error());
    }
    return st;
}

/* Trampolines: the library calls these; they call the exported Go functions (callbacks.go). */

static void tramp_event(const rc_event *event, void *user_data) {
    rcgoEvent((rc_event *)event, (uintptr_t)user_data);
}

static int tramp_encrypt(void *user_data, const char *channel_id, const uint8_t *input, size_t input_len,
                         rc_buffer *output) {
    return rcgoCrypt((uintptr_t)user_data, 0, (char *)channel_id, (uint8_t *)input, input_len, output);
}

static int tramp_decrypt(void *user_data, const char *channel_id, const uint8_t *input, size_t input_len,
                         rc_buffer *output) {
    return rcgoCrypt((uintptr_t)user_data, 1, (char *)channel_id, (uint8_t *)input, input_len, output);
}

static int tramp_transport_send(void *user_data, uint64_t dispatch_id, const rc_waku_message *msg) {
    return rcgoTransportSend((uintptr_t)user_data, dispatch_id, (rc_waku_message *)msg);
}

static void tramp_transport_retrieve(void *user_data, const char *content_topic, const char *const *message_hashes,
                                     size_t count) {
    rcgoTransportRetrieve((uintptr_t)user_data, (char *)content_topic, (char **)message_hashes, count);
}

static void tramp_free(void *user_data) { rcgoFreeHandle((uintptr_t)user_data); }

static void tramp_log(void *user_data, rc_log_level level, const char *target, const char *message) {
    rcgoLog((uintptr_t)user_data, level, (char *)target, (char *)message);
}

/* Wrappers. */

rc_status rcgo_manager_new(const char *config_json, rc_manager **out, char **err) {
    return check(rc_manager_new(config_json, out), err);
}

rc_status rcgo_manager_free(rc_manager *mgr, char **err) { return check(rc_manager_free(mgr), err); }

rc_status rcgo_set_event_callback(rc_manager *mgr, uintptr_t handle, char **err) {
    return check(rc_set_event_callback(mgr, handle ? tramp_event : NULL, (void *)handle), err);
}

rc_status rcgo_open_channel(rc_manager *mgr, const char *channel_id, const char *content_topic,
                            const char *sender_id, const char *channel_config_json, char **err) {
    return check(rc_open_channel(mgr, channel_id, content_topic, sender_id, channel_config_json), err);
}

rc_status rcgo_close_channel(rc_manager *mgr, const char *channel_id, char **err) {
    return check(rc_close_channel(mgr, channel_id), err);
}

rc_status rcgo_channel_purge(rc_manager *mgr, const char *channel_id, char **err) {
    return check(rc_channel_purge(mgr, channel_id), err);
}

rc_status rcgo_send(rc_manager *mgr, const char *channel_id, const uint8_t *payload, size_t payload_len,
                    uint32_t flags, char *request_id_out, char **err) {
    return check(rc_send(mgr, channel_id, payload, payload_len, flags, request_id_out), err);
}

rc_status rcgo_channel_stats_json(rc_manager *mgr, const char *channel_id, char **json_out, char **err) {
    return check(rc_channel_stats_json(mgr, channel_id, json_out), err);
}

rc_status rcgo_relay_listen_addresses(rc_manager *mgr, char **json_out, char **err) {
    return check(rc_relay_listen_addresses(mgr, json_out), err);
}

rc_status rcgo_relay_connect(rc_manager *mgr, const char *multiaddr, char **err) {
    return check(rc_relay_connect(mgr, multiaddr), err);
}

rc_status rcgo_set_encryption(rc_manager *mgr, const char *channel_id, uintptr_t handle, char **err) {
    if (handle == 0) {
        return check(rc_set_encryption(mgr, channel_id, NULL, NULL, NULL, NULL), err);
    }
    return check(rc_set_encryption(mgr, channel_id, tramp_encrypt, tramp_decrypt, (void *)handle, tramp_free), err);
}

rc_status rcgo_set_transport(rc_manager *mgr, uintptr_t handle, char **err) {
    if (handle == 0) {
        return check(rc_set_transport(mgr, NULL, NULL, NULL), err);
    }
    return check(rc_set_transport(mgr, tramp_transport_send, (void *)handle, tramp_free), err);
}

rc_status rcgo_set_transport_retrieve(rc_manager *mgr, uintptr_t handle, char **err) {
    if (handle == 0) {
        return check(rc_set_transport_retrieve(mgr, NULL, NULL, NULL), err);
    }
    return check(rc_set_transport_retrieve(mgr, tramp_transport_retrieve, (void *)handle, tramp_free), err);
}

rc_status rcgo_transport_sent(rc_manager *mgr, uint64_t dispatch_id, const char *message_hash, char **err) {
    return check(rc_transport_sent(mgr, dispatch_id, message_hash), err);
}

rc_status rcgo_transport_failed(rc_manager *mgr, uint64_t dispatch_id, const char *error, char **err) {
    return check(rc_transport_failed(mgr, dispatch_id, error), err);
}

rc_status rcgo_transport_receive(rc_manager *mgr, const char *content_topic, const uint8_t *payload,
                                 size_t payload_len, const uint8_t *meta, size_t meta_len,
                                 int64_t timestamp_ns, int ephemeral, const char *message_hash, char **err) {
    rc_waku_message msg = {
        .content_topic = content_topic,
        .payload = payload,
        .payload_len = payload_len,
        .meta = meta,
        .meta_len = meta_len,
        .timestamp_ns = timestamp_ns,
        .ephemeral = ephemeral != 0,
    };
    return check(rc_transport_receive(mgr, &msg, message_hash), err);
}

rc_status rcgo_set_log_callback(uintptr_t handle, rc_log_level max_level, char **err) {
    return check(rc_set_log_callback(handle ? tramp_log : NULL, (void *)handle, max_level), err);
}

rc_status rcgo_buffer_append(rc_buffer *out, const uint8_t *data, size_t len, char **err) {
    return check(rc_buffer_append(out, data, len), err);
}
