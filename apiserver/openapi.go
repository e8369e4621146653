package apiserver

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"backupd/buildinfo"
)

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// OpenAPI builds the OpenAPI 3 document from the route table, so it
// always lists exactly the routes served.
func (s *Server) OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, p := range Prefixes {
		for _, rt := range s.routes {
			full := rt.servedAt(p)
			item, _ := paths[full].(map[string]any)
			if item == nil {
				item = map[string]any{}
				paths[full] = item
			}
			var params []map[string]any
			for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
				params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
			for _, q := range rt.Query {
				params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{"type": "string"}})
			}
			status := rt.Status
			if status == 0 {
				status = http.StatusOK
			}
			op := map[string]any{
				"summary":     rt.Summary,
				"operationId": strings.ToLower(rt.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_").Replace(strings.TrimPrefix(full, "/")),
				"security":    []map[string]any{{"bearer": []string{}}},
				"x-role":      rt.Role,
				"responses": map[string]any{
					strconv.Itoa(status): map[string]any{"description": "success", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}},
					"400":                errResp("bad input (the field is named in details.field)"),
					"401":                errResp("no valid bearer token"),
					"403":                errResp("the token's role may not call this"),
				},
			}
			if params != nil {
				op["parameters"] = params
			}
			if rt.Body != "" {
				op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
					"schema": map[string]any{"$ref": "#/components/schemas/" + rt.Body}}}}
				op["responses"].(map[string]any)["413"] = errResp("body larger than 1 MiB")
			}
			if rt.Action != "" {
				op["x-audit-action"] = rt.Action
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
			"security": []map[string]any{}, "responses": res}}
	}
	paths[HealthzPath] = probe("getHealthz", "healthz: the process serves HTTP (no token)", 200)
	paths[ReadyzPath] = probe("getReadyz", "readyz: the catalog and Temporal answer and a worker polls this host's task queue (no token)", 200, 503)
	schemas := map[string]any{"Error": map[string]any{"type": "object", "required": []string{"error", "code", "message", "request_id", "timestamp"},
		"properties": map[string]any{"error": map[string]any{"type": "boolean"}, "code": map[string]any{"type": "string"},
			"message": map[string]any{"type": "string"}, "details": map[string]any{"type": "object"},
			"suggested_actions": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"request_id":        map[string]any{"type": "string"}, "timestamp": map[string]any{"type": "string", "format": "date-time"}}}}
	for _, rt := range s.routes {
		if rt.Body != "" {
			schemas[rt.Body] = map[string]any{"type": "object", "description": "see spec/backup-recovery-api.rst; unknown fields are refused"}
		}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "backupd — System Backup & Recovery API", "version": buildinfo.Version(),
			"description": "The contract of spec/backup-recovery-api.rst. Human sizes and durations keep the spec's form; exact numbers sit beside them (*_bytes, *_seconds)."},
		"paths": paths,
		"components": map[string]any{"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas": schemas},
	}
}

func errResp(desc string) map[string]any {
	return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.OpenAPI())
	return nil
}
