/*
 * The configuration schema: every key send-bridge reads, with type, default
 * and a one-line description. `send-bridge config keys` prints this table
 * and the README's configuration reference is written from it.
 * A module that needs a new key adds it here, nowhere else.
 */
#include "sb_common.h"
#include "sb_cfg.h"

#define STR(s, k, def, maxlen, req, doc) { s, k, SB_CFG_STR, def, 0, maxlen, NULL, req, doc }
#define INT(s, k, def, lo, hi, doc)      { s, k, SB_CFG_INT, def, lo, hi, NULL, false, doc }
#define BOOL(s, k, def, doc)             { s, k, SB_CFG_BOOL, def, 0, 0, NULL, false, doc }
#define ENUM(s, k, def, ch, doc)         { s, k, SB_CFG_ENUM, def, 0, 0, ch, false, doc }
#define LIST(s, k, def, ch, doc)         { s, k, SB_CFG_LIST, def, 0, 0, ch, false, doc }
#define TYPED(s, k, t, def, req, doc)    { s, k, t, def, 0, 0, NULL, req, doc }

const struct sb_cfg_key sb_cfg_keys[] = {
	/* [service] */
	STR("service", "sender_denomination", NULL, 88, true,
	    "the Comune's name as SEND shows it to recipients (senderDenomination, max 88)"),
	TYPED("service", "sender_tax_id", SB_CFG_TAXID11, NULL, true,
	      "the Comune's codice fiscale, 11 digits (senderTaxId, creditor of pagoPA notices)"),
	INT("service", "workers", "4", 1, 64, "acts processed in parallel"),
	TYPED("service", "log_level", SB_CFG_LEVEL, "info", false, "debug, info, warn or error"),
	TYPED("service", "log_file", SB_CFG_PATH, NULL, false,
	      "write log lines here instead of stderr (reopened on SIGHUP)"),
	TYPED("service", "pii_key_file", SB_CFG_SECRET, NULL, false,
	      "key for the tags that stand for tax codes in logs; default: one kept in the store"),

	/* [outbox] */
	TYPED("outbox", "dir", SB_CFG_PATH, NULL, true,
	      "outbox root: tmp/, new/, work/, done/ and rejected/ live below it"),
	INT("outbox", "rescan_interval", "30", 1, 3600,
	    "seconds between full rescans of new/ (inotify catches most arrivals at once)"),
	INT("outbox", "max_attempts", "12", 1, 1000,
	    "attempts of one step on temporary errors before the act is failed"),
	INT("outbox", "retry_base", "30", 1, 86400,
	    "first retry delay in seconds (doubles each time)"),
	INT("outbox", "retry_max", "3600", 1, 604800, "longest retry delay in seconds"),
	INT("outbox", "poll_interval", "60", 1, 86400,
	    "seconds between checks of an acceptance or a delivery that is still pending"),

	/* [store] */
	TYPED("store", "path", SB_CFG_PATH, NULL, true, "the SQLite database file"),
	INT("store", "busy_timeout_ms", "5000", 0, 600000,
	    "how long a writer waits for another one before giving up"),

	/* [send] */
	TYPED("send", "base_url", SB_CFG_URL, "https://api.notifichedigitali.it", false,
	      "SEND B2B API (UAT: https://api.uat.notifichedigitali.it)"),
	TYPED("send", "api_key_file", SB_CFG_SECRET, NULL, true,
	      "file holding the x-api-key made in SEND's back office"),
	BOOL("send", "pdnd_voucher", "off",
	     "send a PDND voucher as Authorization: Bearer (when the API key is tied to PDND)"),
	STR("send", "purpose_id", NULL, 64, false, "PDND purpose (finalita) for SEND's e-service"),
	TYPED("send", "voucher_file", SB_CFG_SECRET, NULL, false,
	      "read the voucher from this file instead of asking PDND (testing only)"),
	TYPED("send", "ca_file", SB_CFG_FILE, NULL, false,
	      "CA bundle for SEND's TLS; default: system store"),
	INT("send", "timeout_ms", "60000", 1000, 3600000, "timeout of one API call"),
	INT("send", "upload_timeout_ms", "1800000", 1000, 86400000, "timeout of one file upload"),
	STR("send", "group", NULL, 1024, false, "SEND group id for every notification (optional)"),
	STR("send", "version_requests", "v2.5", 16, false,
	    "API version for /delivery/{v}/requests"),
	STR("send", "version_notifications", "v2.8", 16, false,
	    "API version for /delivery/{v}/notifications/sent"),
	STR("send", "version_streams", "v2.9", 16, false,
	    "API version for /delivery-progresses/{v}/streams"),
	STR("send", "version_legal_facts", "v2.0", 16, false,
	    "API version for /delivery-push/{v}/{iun}/legal-facts"),
	STR("send", "version_price", "v2.3", 16, false, "API version for /delivery/{v}/price"),
	STR("send", "version_cancel", "v2.0", 16, false,
	    "API version for /delivery-push/{v}/notifications/cancel"),
	STR("send", "stream_title", "send-bridge", 256, false,
	    "title of the event stream send-bridge creates"),
	INT("send", "stream_check_interval", "600", 1, 86400,
	    "seconds between checks that the event stream was not disabled at SEND (a disabled"
	    " stream gets no new events; send-bridge then creates another and catches up)"),
	INT("send", "stream_catchup_closed_days", "30", 0, 3650,
	    "when SEND lost the event stream, acts closed in the last N days are read once from"
	    " their timeline too, so a cancellation in the gap is registered (0: open acts only)"),

	/* [pdnd] */
	TYPED("pdnd", "token_url", SB_CFG_URL, "https://auth.interop.pagopa.it/token.oauth2", false,
	      "PDND token endpoint (UAT: https://auth.uat.interop.pagopa.it/token.oauth2)"),
	STR("pdnd", "client_id", NULL, 64, false,
	    "PDND client id (iss and sub of the client assertion)"),
	STR("pdnd", "kid", NULL, 128, false,
	    "key id registered on PDND; default: the RFC 7638 thumbprint"),
	TYPED("pdnd", "private_key_file", SB_CFG_SECRET, NULL, false,
	      "RSA private key (PEM) whose public half is registered on PDND"),
	STR("pdnd", "audience", "auth.interop.pagopa.it/client-assertion", 256, false,
	    "aud of the client assertion, without scheme"),
	TYPED("pdnd", "ca_file", SB_CFG_FILE, NULL, false, "CA bundle for PDND and the e-services"),
	STR("pdnd", "user_location", NULL, 256, false,
	    "userLocation in AUDIT_REST_02 tracking evidence"),
	STR("pdnd", "loa", "LoA3", 16, false, "LoA in AUDIT_REST_02 tracking evidence"),
	INT("pdnd", "timeout_ms", "30000", 1000, 600000,
	    "timeout of one token request or e-service call"),
	INT("pdnd", "voucher_renew_before", "120", 0, 3600,
	    "seconds before expiry a cached voucher is renewed (SEND uses 120)"),
	INT("pdnd", "assertion_ttl", "300", 10, 3600,
	    "lifetime in seconds of client assertions and ModI tokens"),
	TYPED("pdnd", "audit_key_file", SB_CFG_SECRET, NULL, false,
	      "audit key, kept off the store: seals the heads of the access trail and of the "
	      "store's audit trail and keys the latter's chain; without it, a trail cut or "
	      "recomputed together with its head goes unnoticed (docs/pdnd.md)"),

	/* [anpr] */
	TYPED("anpr", "c030_url", SB_CFG_URL, NULL, false,
	      "ANPR C030 (tax code to idANPR) endpoint"),
	TYPED("anpr", "c001_url", SB_CFG_URL, NULL, false, "ANPR C001 (residence) endpoint"),
	STR("anpr", "c030_audience", NULL, 256, false, "voucher audience of C030"),
	STR("anpr", "c001_audience", NULL, 256, false, "voucher audience of C001"),
	STR("anpr", "c030_purpose_id", NULL, 64, false, "PDND purpose for C030"),
	STR("anpr", "c001_purpose_id", NULL, 64, false, "PDND purpose for C001"),
	INT("anpr", "cache_ttl", "86400", 0, 2592000,
	    "seconds a residence found in ANPR is reused"),

	/* [inad] */
	TYPED("inad", "base_url", SB_CFG_URL, NULL, false, "INAD extraction API base URL"),
	STR("inad", "audience", NULL, 256, false, "voucher audience of INAD"),
	STR("inad", "purpose_id", NULL, 64, false, "PDND purpose for INAD"),
	INT("inad", "cache_ttl", "86400", 0, 2592000,
	    "seconds a digital domicile found in INAD is reused"),
	INT("inad", "bulk_threshold", "50", 1, 1000,
	    "recipients above which the bulk list API is used"),

	/* [protocol] */
	ENUM("protocol", "backend", "embedded", "embedded|rest",
	     "embedded register in the store, or a vendor system over REST"),
	STR("protocol", "register", "PG", 16, false, "register code (protocollo generale)"),
	STR("protocol", "ipa_code", NULL, 16, false,
	    "IPA code of the Comune (codiceAmministrazione)"),
	STR("protocol", "aoo_code", NULL, 16, false, "IPA code of the AOO (codiceAOO)"),
	TYPED("protocol", "rest_url", SB_CFG_URL, NULL, false, "vendor protocol system base URL"),
	TYPED("protocol", "rest_auth_file", SB_CFG_SECRET, NULL, false,
	      "file holding the Authorization header value for the vendor system"),
	INT("protocol", "rest_timeout_ms", "30000", 1000, 600000,
	    "timeout of one call to the vendor system"),
	TYPED("protocol", "seal_key_file", SB_CFG_SECRET, NULL, false,
	      "RSA key that seals segnature (XML signature)"),
	TYPED("protocol", "seal_cert_file", SB_CFG_FILE, NULL, false,
	      "certificate of the seal key (PEM)"),
	STR("protocol", "aoo_name", NULL, 256, false,
	    "name of the AOO as registered on IPA (Allegato 5 metadata, Soggetti)"),
	STR("protocol", "pec", NULL, 320, false,
	    "the AOO's PEC address (Allegato 5 metadata, IndirizziDigitaliDiRiferimento)"),
	TYPED("protocol", "segnatura_xsd", SB_CFG_FILE, NULL, false,
	      "segnatura_protocollo.xsd (AgID 2021) with import_schemas/ beside it;"
	      " default: <datadir>/agid/segnatura_protocollo.xsd"),
	TYPED("protocol", "rest_ca_file", SB_CFG_FILE, NULL, false,
	      "CA bundle for the vendor protocol system; default: system store"),

	/* [web] */
	BOOL("web", "enabled", "on", "serve the status page and /metrics"),
	STR("web", "listen", "127.0.0.1:8088", 64, false,
	    "address:port of the status page; "
	    "keep it on loopback behind a proxy with authentication"),

	/* [office.NAME]: one section per office */
	LIST("office.*", "pdfa_flavours", "1a,1b,2a,2b,2u", "1a|1b|2a|2b|2u|3a|3b|3u",
	     "PDF/A flavours accepted for this office's documents (3b: accepted with a warning)"),
	BOOL("office.*", "signature_required", "off",
	     "documents must carry a valid qualified signature"),
	TYPED("office.*", "signature_trust_store", SB_CFG_FILE, NULL, false,
	      "PEM bundle of the CAs trusted for document signatures; unset: chain not checked"),
	ENUM("office.*", "address_policy", "anpr", "anpr|act",
	     "when the act's address differs from ANPR's residence, use anpr or act"),
	LIST("office.*", "operators", NULL, NULL,
	     "user ids allowed to issue acts and query registries"),
	LIST("office.*", "eservices", "anpr-c030,anpr-c001,inad", "anpr-c030|anpr-c001|inad",
	     "PDND e-services this office may query"),
	LIST("office.*", "purposes", NULL, NULL,
	     "PDND purpose ids this office may use; unset: "
	     "the purposes configured for its e-services"),
	STR("office.*", "send_group", NULL, 1024, false,
	    "SEND group id for this office's notifications"),
	STR("office.*", "classification", NULL, 64, false,
	    "titolario code for protocol registrations"),
	STR("office.*", "classification_desc", NULL, 256, false,
	    "description of that titolario entry (Allegato 5 Classificazione)"),
	INT("office.*", "retention_years", "10", 1, 9999,
	    "years the office's acts are kept (Allegato 5 TempoDiConservazione; 9999: permanent)"),

	{ NULL, NULL, SB_CFG_STR, NULL, 0, 0, NULL, false, NULL },
};
