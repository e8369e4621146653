package apiserver

//go:generate go run ../cmd/apidoc -o ../docs/api.md

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"backupd/api"
	"backupd/buildinfo"
)

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// param is one query parameter of a route, with its schema.
type param struct {
	Name   string
	Doc    string
	Schema map[string]any
}

func qStr(name, doc string) param {
	return param{name, doc, map[string]any{"type": "string"}}
}

func qEnum(name string, values []string, doc string) param {
	return param{name, doc, map[string]any{"type": "string", "enum": values}}
}

func qInt(name string, min, max, def int, doc string) param {
	s := map[string]any{"type": "integer", "minimum": min}
	if max > 0 {
		s["maximum"] = max
	}
	if def > 0 {
		s["default"] = def
	}
	return param{name, doc, s}
}

func qBool(name, doc string) param {
	return param{name, doc, map[string]any{"type": "boolean"}}
}

func qTime(name, doc string) param {
	return param{name, doc, map[string]any{"type": "string", "format": "date-time"}}
}

// pagingQuery are every list's paging parameters (def entries a page).
func pagingQuery(def int) []param {
	return []param{
		qInt("limit", 1, api.MaxPageSize, def, "entries on a page"),
		qInt("page_size", 1, api.MaxPageSize, def, "the same as limit (send one of them)"),
		qInt("page", 1, 0, 1, "the page, from 1"),
	}
}

// OpenAPI builds the OpenAPI 3.1 document from the route table and the
// wire types of package api, so it always lists exactly the routes served
// and the bodies they take.
func (s *Server) OpenAPI() map[string]any {
	schemas := api.NewSchemas()
	errRef := schemas.Ref(api.Error{})
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
	}
	paths := map[string]any{}
	for _, p := range Prefixes {
		for _, rt := range s.routes {
			full := rt.servedAt(p)
			item, _ := paths[full].(map[string]any)
			if item == nil {
				item = map[string]any{}
				paths[full] = item
			}
			params := []any{}
			for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
				params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
			for _, q := range rt.Query {
				qp := map[string]any{"name": q.Name, "in": "query", "required": false, "schema": q.Schema}
				if q.Doc != "" {
					qp["description"] = q.Doc
				}
				params = append(params, qp)
			}
			status := rt.Status
			if status == 0 {
				status = http.StatusOK
			}
			responses := map[string]any{
				"default": errResp("an error, in the spec's format (400 names the field in details.field)"),
			}
			if gatedActions[rt.Action] {
				// with approvals on, the destructive form is held (202)
				held := route{Response: api.ApprovalPending{}}
				if status == http.StatusAccepted {
					held.Response = api.OneOf{rt.Response, api.ApprovalPending{}}
					responses["202"] = s.successResponse(held, schemas)
				} else {
					responses["202"] = s.successResponse(held, schemas)
					responses[strconv.Itoa(status)] = s.successResponse(rt, schemas)
				}
			} else {
				responses[strconv.Itoa(status)] = s.successResponse(rt, schemas)
			}
			op := map[string]any{
				"summary":     rt.Summary,
				"operationId": strings.ToLower(rt.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_", "-", "_").Replace(strings.TrimPrefix(full, "/")),
				"x-role":      rt.Role,
				"tags":        []string{tagOf(rt.Path)},
				"responses":   responses,
			}
			if rt.Role == rolePublic {
				op["security"] = []any{}
			} else {
				op["security"] = []any{map[string]any{"bearer": []any{}}}
				responses["401"] = errResp("no valid bearer token")
				responses["403"] = errResp("the token's role (" + rt.Role + " or above needed) may not call this")
			}
			if strings.Contains(rt.Path, "{") {
				responses["404"] = errResp("nothing with that id")
			}
			if len(rt.Query) > 0 || rt.Body != nil {
				responses["400"] = errResp("bad input: details.field names the field, and the message the fix")
			}
			if len(params) > 0 {
				op["parameters"] = params
			}
			if rt.Body != nil {
				op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
					"schema": schemas.Ref(rt.Body)}}}
				responses["413"] = errResp("body larger than 1 MiB")
			}
			if rt.Action != "" {
				op["x-audit-action"] = rt.Action
			}
			if rt.Path == "/ws/backup" {
				op["description"] = "Upgrades to a WebSocket (101). The server then sends JSON messages, each one of " +
					"#/components/schemas/WebSocketMessage (told apart by type). A browser, which cannot set headers, " +
					"sends the token as the subprotocol pair \"bearer, <token>\" or as ?access_token=."
				op["x-websocket-message"] = map[string]any{"$ref": "#/components/schemas/WebSocketMessage"}
			}
			item[strings.ToLower(rt.Method)] = op
		}
	}
	probe := func(id, summary string, codes ...int) map[string]any {
		res := map[string]any{}
		for _, c := range codes {
			res[strconv.Itoa(c)] = map[string]any{"description": http.StatusText(c), "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"type": "object", "properties": map[string]any{"status": map[string]any{"type": "string", "enum": []string{"ok", "not ready"}}}}}}}
		}
		return map[string]any{"get": map[string]any{"summary": summary, "operationId": id,
			"security": []any{}, "tags": []string{"probes"}, "x-role": rolePublic, "responses": res}}
	}
	paths[HealthzPath] = probe("getHealthz", "healthz: the process serves HTTP (no token)", 200)
	paths[ReadyzPath] = probe("getReadyz", "readyz: the catalog and Temporal answer and a worker polls this host's task queue (no token)", 200, 503)
	// the web console: static files, no token (the page asks for one)
	page := func(id, summary, ctype string) map[string]any {
		op := func(verb string) map[string]any {
			return map[string]any{"summary": summary, "operationId": verb + id, "security": []any{}, "tags": []string{"console"}, "x-role": rolePublic,
				"responses": map[string]any{"200": map[string]any{"description": "the file", "content": map[string]any{ctype: map[string]any{}}},
					"304": map[string]any{"description": "Not Modified (If-None-Match matched its ETag)"}, "404": map[string]any{"description": "no such file"}}}
		}
		return map[string]any{"get": op("get"), "head": op("head")}
	}
	paths["/"] = page("Console", "the web console's page (served with a Content-Security-Policy)", "text/html")
	assets := page("ConsoleAsset", "the web console's scripts, styles and images", "*/*")
	for _, verb := range []string{"get", "head"} {
		assets[verb].(map[string]any)["parameters"] = []any{map[string]any{"name": "file", "in": "path", "required": true, "schema": map[string]any{"type": "string"}}}
	}
	paths["/assets/{file}"] = assets
	var msgs []any
	mapping := map[string]any{}
	for _, m := range api.Messages {
		ref := schemas.Ref(m)
		msgs = append(msgs, ref)
		def := schemas.Defs[api.Name(m)].(map[string]any)
		typ := def["properties"].(map[string]any)["type"].(map[string]any)["const"].(string)
		mapping[typ] = ref["$ref"]
	}
	schemas.Defs["WebSocketMessage"] = map[string]any{"description": "a message of GET /ws/backup",
		"oneOf": msgs, "discriminator": map[string]any{"propertyName": "type", "mapping": mapping}}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "backupd — System Backup & Recovery API", "version": buildinfo.Version(),
			"description": "The contract of spec/backup-recovery-api.rst. Human sizes and durations keep the spec's form; " +
				"exact numbers sit beside them (*_bytes, *_seconds). Every route is served under /cloud-integration and " +
				"/v1/cloud-integration. Request bodies are JSON objects; unknown fields are refused with a 400 naming them."},
		"tags":  append(tags(s.routes), map[string]any{"name": "probes"}, map[string]any{"name": "console"}),
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "bkd_…",
				"description": "an API token (backupd token create, or POST /backup/tokens); its role is viewer, operator or admin"}},
			"schemas": schemas.Defs},
	}
}

// successResponse describes a route's success answer.
func (s *Server) successResponse(rt route, schemas *api.Schemas) map[string]any {
	switch {
	case rt.Path == "/ws/backup":
		return map[string]any{"description": "Switching Protocols: the WebSocket is open"}
	case rt.Path == "/metrics":
		return map[string]any{"description": "the metrics in the Prometheus text exposition format",
			"content": map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}}
	case rt.Path == "/backup/debug-bundle":
		return map[string]any{"description": "the bundle, a tar.gz",
			"content": map[string]any{"application/gzip": map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/gzip"}}}}
	case rt.Path == "/backup/download/{backup_id}":
		return map[string]any{"description": "the backup as an archive (format)",
			"content": map[string]any{"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}}}}
	case rt.Response != nil:
		return map[string]any{"description": "success", "content": map[string]any{"application/json": map[string]any{"schema": schemas.Ref(rt.Response)}}}
	}
	return map[string]any{"description": "success", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
}

// tagOf groups a route by its first path element below /backup.
func tagOf(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if parts[0] == "ws" {
		return "websocket"
	}
	if parts[0] != "backup" {
		return parts[0] // /metrics
	}
	if len(parts) < 2 || strings.HasPrefix(parts[1], "{") {
		return "backups"
	}
	switch parts[1] {
	case "list", "details", "create", "download", "progress":
		return "backups"
	case "openapi.json":
		return "reference"
	}
	return parts[1]
}

func tags(routes []route) []any {
	seen := map[string]bool{}
	var names []string
	for _, rt := range routes {
		if t := tagOf(rt.Path); !seen[t] {
			seen[t] = true
			names = append(names, t)
		}
	}
	sort.Strings(names)
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = map[string]any{"name": n}
	}
	return out
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.OpenAPI())
	return nil
}
