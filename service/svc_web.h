/*
 * The status web page and the Prometheus endpoint ([web] enabled, listen),
 * served by libmicrohttpd on its own thread:
 *
 *	GET /          acts per state and the latest acts (personal data masked)
 *	GET /metrics   Prometheus text format 0.0.4 (svc_metrics.h)
 *
 * The server has no authentication of its own: keep it on loopback behind
 * a proxy that has. It opens its own read connection to the store.
 */
#ifndef SVC_WEB_H
#define SVC_WEB_H

#include "sb_err.h"

struct svc_web;

/*
 * Listen on listen ("127.0.0.1:8088", "[::1]:8088"; port 0 picks a free
 * one) and serve the store at store_path. SB_ECONFIG for a bad address,
 * SB_EIO when the port cannot be bound or the store opened.
 */
int svc_web_start(struct svc_web **out, const char *listen, const char *store_path,
		  int busy_timeout_ms, struct sb_err *err);
/* The port actually bound. */
unsigned svc_web_port(const struct svc_web *w);
/* Stop serving and free; NULL is a no-op. */
void svc_web_stop(struct svc_web *w);

#endif
