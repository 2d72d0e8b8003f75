/*
 * Allegato 5 metadata record (agid_meta.h), built with libxml2's tree API
 * so that every text is escaped by the library.
 *
 * Spec: ../shared/specs/agid/allegato5_thirdparty/documentoAmministrativoInformatico.xsd
 * and SUMMARY.md 1.4. The fixed texts below are copied from the XSD as
 * they are, double spaces included: the schema types are xs:string, which
 * keeps whitespace, so a "corrected" text would not validate.
 */
#include <libxml/tree.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_ids.h"
#include "agid_doc.h"
#include "agid_meta.h"

static const char *const formation_text[] = {
	"creazione tramite utilizzo di strumenti software che assicurino la produzione di "
	"documenti  nei formati previsti in allegato 2",
	"acquisizione di un documento informatico per via telematica o su supporto informatico,  "
	"acquisizione della copia per immagine su supporto informatico di un documento analogico, "
	"acquisizione della copia informatica di un documento  analogico",
	"memorizzazione su supporto informatico in formato digitale delle informazioni risultanti "
	"da  transazioni o processi informatici o dalla presentazione telematica di dati "
	"attraverso moduli o formulari resi disponibili ad utente",
	"generazione o raggruppamento anche in via automatica di un insieme di dati o  "
	"registrazioni, provenienti da una o pi\xc3\xb9 banche dati, anche appartenenti a "
	"pi\xc3\xb9 soggetti interoperanti, secondo una struttura logica predeterminata  e "
	"memorizzata in forma statica",
};

static const struct {
	const char *element, *tipo;
} roles[] = {
	[AGID_ROLE_AMMINISTRAZIONE] = { "AmministrazioneCheEffettuaLaRegistrazione",
					"Amministrazione Che Effettua  La Registrazione" },
	[AGID_ROLE_DESTINATARIO] = { "Destinatario", "Destinatario" },
	[AGID_ROLE_MITTENTE] = { "Mittente", "Mittente" },
	[AGID_ROLE_AUTORE] = { "Autore", "Autore" },
	[AGID_ROLE_OPERATORE] = { "Operatore", "Operatore" },
	[AGID_ROLE_RESP_GESTIONE] = { "ResponsabileGestioneDocumentale",
				      "Responsabile della Gestione  Documentale" },
	[AGID_ROLE_RESP_PROTOCOLLO] = { "ResponsabileServizioProtocollo",
					"Responsabile del Servizio di  Protocollo" },
	[AGID_ROLE_PRODUTTORE] = { "Produttore", "Produttore" },
};

void agid_meta_from_report(struct agid_meta *m, const struct agid_doc_report *r)
{
	m->sha256_hex = r->sha256;
	m->flavour = r->pdfa && r->pdfa->valid ? r->pdfa->profile : AGID_PDFA_NONE;
	m->signed_doc = m->sealed = false;
	for (size_t i = 0; i < r->sig.n; i++) {
		if (!r->sig.sigs[i].valid || r->sig.sigs[i].kind == AGID_SIG_TIMESTAMP)
			continue;
		if (r->sig.sigs[i].seal)
			m->sealed = true;
		else
			m->signed_doc = true;
	}
	m->timestamped = false;
	for (size_t i = 0; i < r->sig.n; i++)
		if (r->sig.sigs[i].valid && r->sig.sigs[i].kind == AGID_SIG_TIMESTAMP)
			m->timestamped = true;
}

/* ---- validation ---- */

static bool empty(const char *s)
{
	return !s || !*s;
}

static void need(struct sb_problems *p, const char *path, const char *s)
{
	if (empty(s))
		sb_problems_add(p, path, "required");
}

static bool all_digits(const char *s, size_t min)
{
	size_t n = 0;

	for (; s && *s; s++, n++)
		if (*s < '0' || *s > '9')
			return false;
	return n >= min;
}

static bool is_hex64(const char *s)
{
	size_t n = 0;

	for (; s && *s; s++, n++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
		      (*s >= 'A' && *s <= 'F')))
			return false;
	return n == 64;
}

static bool is_date(const char *s)
{
	return s && strlen(s) == 10 && all_digits((char[]){ s[0], s[1], s[2], s[3], 0 }, 4) &&
	       s[4] == '-' && s[7] == '-' && s[5] >= '0' && s[5] <= '1' &&
	       s[6] >= '0' && s[6] <= '9' &&
	       s[8] >= '0' && s[8] <= '3' && s[9] >= '0' && s[9] <= '9';
}

static bool is_time(const char *s)
{
	return s && strlen(s) == 8 && s[2] == ':' && s[5] == ':' && s[0] >= '0' && s[0] <= '2' &&
	       s[3] >= '0' && s[3] <= '5' && s[6] >= '0' && s[6] <= '5';
}

static bool is_reg_code(const char *s)
{
	size_t n = 0;

	for (; s && *s; s++, n++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return false;
	return n >= 1 && n <= 16;
}

static void check_party(const struct agid_party *p, size_t i, struct sb_problems *probs)
{
	char path[64];
	bool ok_kind;

	snprintf(path, sizeof(path), "Soggetti/Ruolo[%zu]", i);
	switch (p->role) {
	case AGID_ROLE_AMMINISTRAZIONE: ok_kind = p->kind == AGID_PAI; break;
	case AGID_ROLE_DESTINATARIO:
	case AGID_ROLE_MITTENTE:
	case AGID_ROLE_AUTORE: ok_kind = p->kind != AGID_SW; break;
	case AGID_ROLE_PRODUTTORE: ok_kind = p->kind == AGID_SW; break;
	default: ok_kind = p->kind == AGID_PF; break;
	}
	if ((unsigned)p->role >= SB_ARRAY_SIZE(roles) || !ok_kind) {
		sb_problems_add(probs, path, "subject type not allowed for this role");
		return;
	}
	switch (p->kind) {
	case AGID_PF:
		if (empty(p->surname) || empty(p->name))
			sb_problems_add(probs, path, "PF needs Cognome and Nome");
		if (!empty(p->tax_id) && sb_cf_person_check(p->tax_id, NULL) < 0)
			sb_problems_add(probs, path,
					"PF CodiceFiscale is not a valid codice fiscale");
		break;
	case AGID_PG:
		if (empty(p->denomination))
			sb_problems_add(probs, path, "PG needs DenominazioneOrganizzazione");
		if (!empty(p->vat) && !(strlen(p->vat) == 11 && all_digits(p->vat, 11)))
			sb_problems_add(probs, path,
					"PG CodiceFiscale_PartitaIva must be 11 digits");
		break;
	case AGID_PAI:
		if (empty(p->ipa_amm) || empty(p->ipa_amm_name) || empty(p->ipa_aoo) ||
		    empty(p->ipa_aoo_name))
			sb_problems_add(probs, path, "PAI needs IPAAmm and IPAAOO codes and names");
		if (empty(p->digital_address))
			sb_problems_add(probs, path, "PAI needs IndirizziDigitaliDiRiferimento");
		break;
	case AGID_SW:
		if (empty(p->denomination))
			sb_problems_add(probs, path, "SW needs DenominazioneSistema");
		break;
	}
}

int agid_meta_validate(const struct agid_meta *m, struct sb_problems *probs, struct sb_err *err)
{
	struct sb_problems local = SB_PROBLEMS_INIT;
	struct sb_problems *p = probs ? probs : &local;
	size_t before = sb_problems_count(p), found;
	bool amm = false;

	if (!is_hex64(m->sha256_hex))
		sb_problems_add(p, "IdDoc/ImprontaCrittograficaDelDocumento/Impronta",
				"SHA-256 of the document required (64 hex digits)");
	need(p, "IdDoc/Identificativo", m->id);
	if ((unsigned)m->formation >= SB_ARRAY_SIZE(formation_text))
		sb_problems_add(p, "ModalitaDiFormazione", "must be a, b, c or d");
	need(p, "TipologiaDocumentale", m->tipologia);
	if (m->flow != 'E' && m->flow != 'U' && m->flow != 'I')
		sb_problems_add(p, "DatiDiRegistrazione/TipologiaDiFlusso", "must be E, U or I");
	if (!is_date(m->reg_date))
		sb_problems_add(p, "DatiDiRegistrazione/Data", "date YYYY-MM-DD required");
	if (!empty(m->reg_time) && !is_time(m->reg_time))
		sb_problems_add(p, "DatiDiRegistrazione/Ora", "time must be hh:mm:ss");
	if (m->protocol && !all_digits(m->reg_number, 7))
		sb_problems_add(p, "DatiDiRegistrazione/NumeroProtocolloDocumento",
				"at least 7 digits required (DPR 445/2000 art. 57)");
	if (!m->protocol)
		need(p, "DatiDiRegistrazione/NumeroRegistrazioneDocumento", m->reg_number);
	if (!is_reg_code(m->reg_code))
		sb_problems_add(p, "DatiDiRegistrazione/CodiceRegistro",
				"must match [A-Za-z0-9_.-]{1,16}");
	if (!m->nparties)
		sb_problems_add(p, "Soggetti", "at least one Ruolo required");
	for (size_t i = 0; i < m->nparties; i++) {
		check_party(&m->parties[i], i, p);
		amm = amm || m->parties[i].role == AGID_ROLE_AMMINISTRAZIONE;
	}
	if (m->protocol && !amm)
		sb_problems_add(p, "Soggetti",
				"AmministrazioneCheEffettuaLaRegistrazione required");
	need(p, "ChiaveDescrittiva/Oggetto", m->subject);
	if (m->nkeywords > 5)
		sb_problems_add(p, "ChiaveDescrittiva/ParoleChiave", "at most 5");
	if (m->nattachments > 9999)
		sb_problems_add(p, "Allegati/NumeroAllegati", "at most 9999");
	for (size_t i = 0; i < m->nattachments && i < 9999; i++) {
		char path[64];

		snprintf(path, sizeof(path), "Allegati/IndiceAllegati[%zu]", i);
		if (!is_hex64(m->attachments[i].sha256_hex) || empty(m->attachments[i].id) ||
		    empty(m->attachments[i].description))
			sb_problems_add(p, path,
					"IdDoc (SHA-256, Identificativo) and Descrizione required");
	}
	need(p, "Classificazione/IndiceDiClassificazione", m->class_index);
	need(p, "Classificazione/Descrizione", m->class_desc);
	if (empty(m->agg_type) ||
	    (strcmp(m->agg_type, "Fascicolo") && strcmp(m->agg_type, "Serie Documentale") &&
				   strcmp(m->agg_type, "Serie Di Fascicoli")))
		sb_problems_add(p, "Agg/TipoAgg/TipoAggregazione",
				"must be Fascicolo, Serie Documentale or Serie Di Fascicoli");
	need(p, "Agg/TipoAgg/IdAggregazione", m->agg_id);
	if (!empty(m->primary_id) && !is_hex64(m->primary_sha256_hex))
		sb_problems_add(p, "IdIdentificativoDocumentoPrimario",
				"SHA-256 of the primary document required");
	need(p, "NomeDelDocumento", m->file_name);
	if (m->version < 1)
		sb_problems_add(p, "VersioneDelDocumento", "must be 1 or more");
	else if (m->version > 1)
		sb_problems_add(p, "TracciatureModificheDocumento",
				"required for version > 1 (not supported by this exporter)");
	if (m->retention_years < 1 || m->retention_years > 9999)
		sb_problems_add(p, "TempoDiConservazione",
				"years 1..9999 required (9999: permanent)");
	found = sb_problems_count(p) - before;
	sb_problems_release(&local);
	if (found)
		return sb_err_set(err, SB_EINVAL, 0, "metadata record has %zu problem(s)", found);
	return 0;
}

/* ---- XML ---- */

static xmlNode *add(xmlNode *parent, const char *name, const char *text)
{
	return xmlNewTextChild(parent, NULL, (const xmlChar *)name, (const xmlChar *)text);
}

static void add_iddoc(xmlNode *parent, const char *name, const char *sha_hex, const char *id,
		      const char *segnatura)
{
	xmlNode *iddoc = add(parent, name, NULL),
		*imp = add(iddoc, "ImprontaCrittograficaDelDocumento", NULL);
	struct sb_buf raw = SB_BUF_INIT(64), b64 = SB_BUF_INIT(128);

	sb_hex_decode(sha_hex, strlen(sha_hex), &raw);
	sb_base64_encode(raw.buf ? raw.buf : "", raw.len, &b64);
	add(imp, "Impronta", sb_buf_cstr(&b64));
	add(imp, "Algoritmo", "SHA-256");
	add(iddoc, "Identificativo", id);
	if (!empty(segnatura))
		add(iddoc, "Segnatura", segnatura);
	sb_buf_release(&raw);
	sb_buf_release(&b64);
}

static void add_ipa(xmlNode *parent, const char *element, const char *name, const char *code)
{
	xmlNode *n = add(parent, element, NULL);

	add(n, "Denominazione", name);
	add(n, "CodiceIPA", code);
}

static void add_party(xmlNode *soggetti, const struct agid_party *p)
{
	xmlNode *ruolo = add(soggetti, "Ruolo", NULL),
		*r = add(ruolo, roles[p->role].element, NULL), *s;

	add(r, "TipoRuolo", roles[p->role].tipo);
	switch (p->kind) {
	case AGID_PF:
		s = add(r, "PF", NULL);
		add(s, "Cognome", p->surname);
		add(s, "Nome", p->name);
		if (!empty(p->tax_id))
			add(s, "CodiceFiscale", p->tax_id);
		if (!empty(p->digital_address))
			add(s, "IndirizziDigitaliDiRiferimento", p->digital_address);
		break;
	case AGID_PG:
		s = add(r, "PG", NULL);
		add(s, "DenominazioneOrganizzazione", p->denomination);
		if (!empty(p->vat))
			add(s, "CodiceFiscale_PartitaIva", p->vat);
		if (!empty(p->digital_address))
			add(s, "IndirizziDigitaliDiRiferimento", p->digital_address);
		break;
	case AGID_PAI:
		s = add(r, "PAI", NULL);
		add_ipa(s, "IPAAmm", p->ipa_amm_name, p->ipa_amm);
		add_ipa(s, "IPAAOO", p->ipa_aoo_name, p->ipa_aoo);
		add(s, "IndirizziDigitaliDiRiferimento", p->digital_address);
		break;
	case AGID_SW:
		s = add(r, "SW", NULL);
		add(s, "DenominazioneSistema", p->denomination);
		break;
	}
}

static const char *format_name(enum agid_flavour f, char *buf, size_t size)
{
	if (f == AGID_PDFA_NONE)
		return "PDF";
	snprintf(buf, size, "PDF/A-%s", agid_flavour_name(f));
	return buf;
}

int agid_meta_to_xml(const struct agid_meta *m, struct sb_buf *out, struct sb_problems *probs,
		     struct sb_err *err)
{
	xmlDoc *doc = NULL;
	xmlNode *root, *n, *reg, *k;
	xmlChar *mem = NULL;
	char num[16], fmt[16], flow[2] = { m->flow, '\0' };
	int size = 0, rc;

	rc = agid_meta_validate(m, probs, err);
	if (rc < 0)
		return rc;
	doc = xmlNewDoc((const xmlChar *)"1.0");
	root = xmlNewNode(NULL, (const xmlChar *)"DocumentoAmministrativoInformatico");
	xmlDocSetRootElement(doc, root);
	add_iddoc(root, "IdDoc", m->sha256_hex, m->id, m->segnatura);
	add(root, "ModalitaDiFormazione", formation_text[m->formation]);
	add(root, "TipologiaDocumentale", m->tipologia);
	n = add(root, "DatiDiRegistrazione", NULL);
	add(n, "TipologiaDiFlusso", flow);
	reg = add(add(n, "TipoRegistro", NULL),
		  m->protocol ? "ProtocolloOrdinario_ProtocolloEmergenza" : "Repertorio_Registro",
		  NULL);
	add(reg, "TipoRegistro",
	    m->protocol ? "ProtocolloOrdinario\\ProtocolloEmergenza" : "Repertorio\\Registro");
	add(reg, m->protocol ? "DataProtocollazioneDocumento" : "DataRegistrazioneDocumento",
	    m->reg_date);
	if (!empty(m->reg_time))
		add(reg, m->protocol ? "OraProtocollazioneDocumento" : "OraRegistrazioneDocumento",
		    m->reg_time);
	add(reg, m->protocol ? "NumeroProtocolloDocumento" : "NumeroRegistrazioneDocumento",
	    m->reg_number);
	add(reg, "CodiceRegistro", m->reg_code);
	n = add(root, "Soggetti", NULL);
	for (size_t i = 0; i < m->nparties; i++)
		add_party(n, &m->parties[i]);
	n = add(root, "ChiaveDescrittiva", NULL);
	add(n, "Oggetto", m->subject);
	for (size_t i = 0; i < m->nkeywords; i++)
		add(n, "ParoleChiave", m->keywords[i]);
	n = add(root, "Allegati", NULL);
	snprintf(num, sizeof(num), "%zu", m->nattachments);
	add(n, "NumeroAllegati", num);
	for (size_t i = 0; i < m->nattachments; i++) {
		k = add(n, "IndiceAllegati", NULL);
		add_iddoc(k, "IdDoc", m->attachments[i].sha256_hex, m->attachments[i].id, NULL);
		add(k, "Descrizione", m->attachments[i].description);
	}
	n = add(root, "Classificazione", NULL);
	add(n, "IndiceDiClassificazione", m->class_index);
	add(n, "Descrizione", m->class_desc);
	if (!empty(m->class_plan))
		add(n, "PianoDiClassificazione", m->class_plan);
	add(root, "Riservato", m->reserved ? "true" : "false");
	n = add(root, "IdentificativoDelFormato", NULL);
	add(n, "Formato", format_name(m->flavour, fmt, sizeof(fmt)));
	if (!empty(m->sw_name) || !empty(m->sw_version) || !empty(m->sw_producer)) {
		k = add(n, "ProdottoSoftware", NULL);
		if (!empty(m->sw_name))
			add(k, "NomeProdotto", m->sw_name);
		if (!empty(m->sw_version))
			add(k, "VersioneProdotto", m->sw_version);
		if (!empty(m->sw_producer))
			add(k, "Produttore", m->sw_producer);
	}
	n = add(root, "Verifica", NULL);
	add(n, "FirmatoDigitalmente", m->signed_doc ? "true" : "false");
	add(n, "SigillatoElettronicamente", m->sealed ? "true" : "false");
	add(n, "MarcaturaTemporale", m->timestamped ? "true" : "false");
	add(n, "ConformitaCopieImmagineSuSupportoInformatico",
	    m->copy_conformity ? "true" : "false");
	k = add(add(root, "Agg", NULL), "TipoAgg", NULL);
	add(k, "TipoAggregazione", m->agg_type);
	add(k, "IdAggregazione", m->agg_id);
	if (!empty(m->primary_id))
		add_iddoc(root, "IdIdentificativoDocumentoPrimario", m->primary_sha256_hex,
			  m->primary_id, NULL);
	add(root, "NomeDelDocumento", m->file_name);
	snprintf(num, sizeof(num), "%d", m->version);
	add(root, "VersioneDelDocumento", num);
	snprintf(num, sizeof(num), "%d", m->retention_years);
	add(root, "TempoDiConservazione", num);
	if (!empty(m->note))
		add(root, "Note", m->note);
	xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 1);
	if (!mem || size <= 0)
		rc = sb_err_set(err, SB_EINTERNAL, 0, "metadata record cannot be serialised");
	else if (sb_buf_add(out, mem, (size_t)size) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "metadata record larger than the buffer limit");
	xmlFree(mem);
	xmlFreeDoc(doc);
	return rc;
}
