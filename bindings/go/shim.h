/* C glue between the Go package and libreliable_channel (not part of the public API).
 *
 * - Every rcgo_* call that can fail copies rc_last_error() into *err (malloc'd; the caller frees
 *   it) in the same C call, on the same OS thread: a goroutine may move between threads between
 *   two cgo calls, and rc_last_error() is thread-local.
 * - Go values reach the library only as runtime/cgo.Handle integers carried in user_data; the
 *   trampolines (shim.c) turn them back into integers for the //export'ed Go functions.
 * - rcgo_current/rcgo_swap_current keep, per OS thread, the handle of the manager whose callback
 *   is running on that thread (0 outside callbacks; RCGO_LOG_TOKEN inside the log function): Close
 *   uses it to refuse a call from inside its own callbacks and from the log function.
 */
#ifndef RCGO_SHIM_H
#define RCGO_SHIM_H

#include <stdint.h>
#include <stdlib.h>
#include "reliable_channel.h"

/* The callback token of the log function (cgo handles are small integers: never this one). */
#define RCGO_LOG_TOKEN UINTPTR_MAX

uintptr_t rcgo_current(void);
uintptr_t rcgo_swap_current(uintptr_t token);

rc_status rcgo_manager_new(const char *config_json, rc_manager **out, char **err);
rc_status rcgo_manager_free(rc_manager *mgr, char **err);
rc_status rcgo_set_event_callback(rc_manager *mgr, uintptr_t handle, char **err);
rc_status rcgo_open_channel(rc_manager *mgr, const char *channel_id, const char *content_topic,
                            const char *sender_id, const char *channel_config_json, char **err);
rc_status rcgo_close_channel(rc_manager *mgr, const char *channel_id, char **err);
rc_status rcgo_channel_purge(rc_manager *mgr, const char *channel_id, char **err);
rc_status rcgo_send(rc_manager *mgr, const char *channel_id, const uint8_t *payload, size_t payload_len,
                    uint32_t flags, char *request_id_out, char **err);
rc_status rcgo_channel_stats_json(rc_manager *mgr, const char *channel_id, char **json_out, char **err);
rc_status rcgo_relay_listen_addresses(rc_manager *mgr, char **json_out, char **err);
rc_status rcgo_relay_connect(rc_manager *mgr, const char *multiaddr, char **err);
/* handle == 0 removes the hook. */
rc_status rcgo_set_encryption(rc_manager *mgr, const char *channel_id, uintptr_t handle, char **err);
rc_status rcgo_set_transport(rc_manager *mgr, uintptr_t handle, char **err);
rc_status rcgo_set_transport_retrieve(rc_manager *mgr, uintptr_t handle, char **err);
rc_status rcgo_transport_sent(rc_manager *mgr, uint64_t dispatch_id, const char *message_hash, char **err);
rc_status rcgo_transport_failed(rc_manager *mgr, uint64_t dispatch_id, const char *error, char **err);
rc_status rcgo_transport_receive(rc_manager *mgr, const char *content_topic, const uint8_t *payload,
                                 size_t payload_len, const uint8_t *meta, size_t meta_len,
                                 int64_t timestamp_ns, int ephemeral, const char *message_hash, char **err);
/* handle == 0 removes the log function. */
rc_status rcgo_set_log_callback(uintptr_t handle, rc_log_level max_level, char **err);
/* rc_buffer_append, with the error text. */
rc_status rcgo_buffer_append(rc_buffer *out, const uint8_t *data, size_t len, char **err);

#endif
