/* frame.c: the length-prefixed frame codec shared by daemon and clients. */
#include "frame.h"

#include <errno.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint16_t get_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

void tr_frame_hdr_encode(uint8_t out[sizeof(tr_frame_hdr)], uint16_t type,
                         uint32_t len) {
  put_u32(out, len);
  put_u16(out + 4, type);
  put_u16(out + 6, 0);
}

int64_t tr_frame_parse(const uint8_t *buf, size_t len, tr_frame_hdr *hdr) {
  if (len < sizeof(tr_frame_hdr)) return 0;
  hdr->len = get_u32(buf);
  hdr->type = get_u16(buf + 4);
  hdr->flags = get_u16(buf + 6);
  /* Check the header before waiting for a payload it announces, so a bad
   * peer is refused at once instead of being buffered. */
  if (hdr->type == 0 || hdr->flags != 0) return -EPROTO;
  if (hdr->len > TR_FRAME_MAX_PAYLOAD) return -EMSGSIZE;
  size_t total = sizeof(tr_frame_hdr) + (size_t)hdr->len;
  if (len < total) return 0;
  return (int64_t)total;
}

const char *tr_msg_name(uint16_t type) {
  switch (type) {
    case TR_MSG_HELLO:
      return "HELLO";
    case TR_MSG_WELCOME:
      return "WELCOME";
    case TR_MSG_SESSION_CREATE:
      return "SESSION_CREATE";
    case TR_MSG_SESSION_CREATED:
      return "SESSION_CREATED";
    case TR_MSG_SESSION_JOIN:
      return "SESSION_JOIN";
    case TR_MSG_SESSION_JOINED:
      return "SESSION_JOINED";
    case TR_MSG_RING_ADD:
      return "RING_ADD";
    case TR_MSG_DOORBELL:
      return "DOORBELL";
    case TR_MSG_SESSION_END:
      return "SESSION_END";
    case TR_MSG_SESSION_SUMMARY:
      return "SESSION_SUMMARY";
    case TR_MSG_PROCESS_INFO:
      return "PROCESS_INFO";
    case TR_MSG_STATUS:
      return "STATUS";
    case TR_MSG_STATUS_REPLY:
      return "STATUS_REPLY";
    case TR_MSG_STOP:
      return "STOP";
    case TR_MSG_ERROR:
      return "ERROR";
    case TR_MSG_STOPPING:
      return "STOPPING";
    case TR_MSG_HANDLES:
      return "HANDLES";
    default:
      return "?";
  }
}
