package apiserver

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Document is the OpenAPI document of the route table alone (no
// configuration, catalog or Temporal needed), for the reference generator.
func Document() map[string]any {
	s := &Server{}
	s.routes = s.routeTable()
	return s.OpenAPI()
}

// Reference renders an OpenAPI document (as OpenAPI builds it) as the
// human-readable API reference, docs/api.md.
func Reference(doc map[string]any) string {
	var b strings.Builder
	info := doc["info"].(map[string]any)
	comps := doc["components"].(map[string]any)
	schemas := comps["schemas"].(map[string]any)
	fmt.Fprintf(&b, "# %s\n\n", info["title"])
	b.WriteString("<!-- Generated from the route table and package api by `go generate ./apiserver`; do not edit. -->\n\n")
	fmt.Fprintf(&b, "%s\n\n", info["description"])
	b.WriteString("Every path below /cloud-integration is also served under `/v1/cloud-integration`. The machine-readable form is " +
		"`GET /cloud-integration/backup/openapi.json` (OpenAPI 3.1, no token needed).\n\n")
	b.WriteString("**Authentication**: `Authorization: Bearer <token>` on every route but the OpenAPI document. " +
		"Roles rank viewer < operator < admin; each route names the least role it needs. " +
		"401 without a valid token, 403 for a lower role.\n\n")
	b.WriteString("**Errors**: every error is the [Error](#error) object; `details.field` names a wrong request field, " +
		"`suggested_actions` is never empty.\n\n")
	paths := doc["paths"].(map[string]any)
	type op struct {
		method, path string
		o            map[string]any
	}
	byTag := map[string][]op{}
	var tags []string
	for _, t := range doc["tags"].([]any) {
		tags = append(tags, t.(map[string]any)["name"].(string))
	}
	for p, item := range paths {
		if strings.HasPrefix(p, "/v1/") {
			continue // the same routes again
		}
		for m, o := range item.(map[string]any) {
			om := o.(map[string]any)
			tag := om["tags"].([]string)[0]
			byTag[tag] = append(byTag[tag], op{strings.ToUpper(m), p, om})
		}
	}
	b.WriteString("## Contents\n\n")
	for _, t := range tags {
		ops := byTag[t]
		sort.Slice(ops, func(i, j int) bool {
			if ops[i].path != ops[j].path {
				return ops[i].path < ops[j].path
			}
			return ops[i].method < ops[j].method
		})
		fmt.Fprintf(&b, "- %s\n", t)
		for _, o := range ops {
			fmt.Fprintf(&b, "  - [`%s %s`](#%s)\n", o.method, o.path, anchor(o.method+" "+o.path))
		}
	}
	b.WriteString("- [Schemas](#schemas)\n\n")
	for _, t := range tags {
		fmt.Fprintf(&b, "## %s\n\n", t)
		for _, o := range byTag[t] {
			fmt.Fprintf(&b, "### %s %s\n\n", o.method, o.path)
			fmt.Fprintf(&b, "%s\n\n", o.o["summary"])
			role := o.o["x-role"].(string)
			if role == rolePublic {
				b.WriteString("Role: none (no token).")
			} else {
				fmt.Fprintf(&b, "Role: %s.", role)
			}
			if a, ok := o.o["x-audit-action"]; ok {
				fmt.Fprintf(&b, " Audited as `%s`.", a)
			}
			b.WriteString("\n\n")
			if d, ok := o.o["description"].(string); ok {
				fmt.Fprintf(&b, "%s\n\n", d)
			}
			if ps, ok := o.o["parameters"].([]any); ok {
				b.WriteString("| parameter | in | type | description |\n|---|---|---|---|\n")
				for _, p := range ps {
					pm := p.(map[string]any)
					fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", pm["name"], pm["in"], typeText(pm["schema"].(map[string]any)),
						cell(str(pm["description"])))
				}
				b.WriteString("\n")
			}
			if rb, ok := o.o["requestBody"].(map[string]any); ok {
				sc := rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
				fmt.Fprintf(&b, "Request body: %s\n\n", typeText(sc))
			}
			codes := make([]string, 0)
			for c := range o.o["responses"].(map[string]any) {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			b.WriteString("| status | answer |\n|---|---|\n")
			for _, c := range codes {
				r := o.o["responses"].(map[string]any)[c].(map[string]any)
				ans := cell(str(r["description"]))
				if ct, ok := r["content"].(map[string]any); ok {
					for _, mt := range ct {
						if sc, ok := mt.(map[string]any)["schema"].(map[string]any); ok {
							ans += ": " + typeText(sc)
						}
					}
				}
				fmt.Fprintf(&b, "| %s | %s |\n", c, ans)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("## Schemas\n\n")
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sc := schemas[n].(map[string]any)
		fmt.Fprintf(&b, "### %s\n\n", n)
		if d, ok := sc["description"].(string); ok {
			fmt.Fprintf(&b, "%s\n\n", d)
		}
		if one, ok := sc["oneOf"].([]any); ok {
			b.WriteString("One of:\n\n")
			for _, o := range one {
				fmt.Fprintf(&b, "- %s\n", typeText(o.(map[string]any)))
			}
			b.WriteString("\n")
			continue
		}
		props, _ := sc["properties"].(map[string]any)
		if len(props) > 0 {
			req := map[string]bool{}
			if rs, ok := sc["required"].([]string); ok {
				for _, r := range rs {
					req[r] = true
				}
			}
			b.WriteString("| field | type | required | description |\n|---|---|---|---|\n")
			for _, f := range sortedKeys(props) {
				p := props[f].(map[string]any)
				r := ""
				if req[f] {
					r = "yes"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f, typeText(p), r, cell(str(p["description"])))
			}
			b.WriteString("\n")
		}
		switch ap := sc["additionalProperties"].(type) {
		case map[string]any:
			fmt.Fprintf(&b, "Any other key: %s.", typeText(ap))
			if d := str(ap["description"]); d != "" {
				fmt.Fprintf(&b, " %s.", strings.TrimSuffix(d, "."))
			}
			b.WriteString("\n\n")
		case bool:
			if !ap && len(props) > 0 {
				b.WriteString("No other fields (a request with one is refused, naming it).\n\n")
			}
		}
	}
	return b.String()
}

// typeText is a schema in a few words: type, enum, limits, example.
func typeText(s map[string]any) string {
	if r, ok := s["$ref"].(string); ok {
		n := strings.TrimPrefix(r, "#/components/schemas/")
		return fmt.Sprintf("[%s](#%s)", n, anchor(n))
	}
	if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
		return typeText(all[0].(map[string]any))
	}
	if one, ok := s["oneOf"].([]any); ok {
		var parts []string
		for _, o := range one {
			parts = append(parts, typeText(o.(map[string]any)))
		}
		return strings.Join(parts, " or ")
	}
	var t string
	switch ty := s["type"].(type) {
	case string:
		t = ty
	case []any:
		var parts []string
		for _, x := range ty {
			parts = append(parts, fmt.Sprint(x))
		}
		t = strings.Join(parts, " or ")
	default:
		t = "any"
	}
	if t == "array" {
		if it, ok := s["items"].(map[string]any); ok {
			t = "array of " + typeText(it)
		}
	}
	if t == "object" {
		if ap, ok := s["additionalProperties"].(map[string]any); ok && s["properties"] == nil {
			t = "object of " + typeText(ap)
		}
	}
	var extra []string
	if f, ok := s["format"]; ok {
		extra = append(extra, fmt.Sprint(f))
	}
	if c, ok := s["const"]; ok {
		extra = append(extra, "always "+jsonText(c))
	}
	if e, ok := s["enum"]; ok {
		extra = append(extra, "one of "+enumText(e))
	}
	if pn, ok := s["propertyNames"].(map[string]any); ok {
		extra = append(extra, "keys: "+enumText(pn["enum"]))
	}
	lim := func(k, label string) {
		if v, ok := s[k]; ok {
			extra = append(extra, label+" "+jsonText(v))
		}
	}
	lim("minimum", "≥")
	lim("maximum", "≤")
	lim("minLength", "length ≥")
	lim("maxLength", "length ≤")
	lim("minItems", "items ≥")
	lim("default", "default")
	if p, ok := s["pattern"]; ok {
		extra = append(extra, "matching `"+fmt.Sprint(p)+"`")
	}
	if ex, ok := s["examples"].([]any); ok && len(ex) > 0 {
		extra = append(extra, "e.g. `"+jsonText(ex[0])+"`")
	}
	if len(extra) > 0 {
		t += " (" + strings.Join(extra, "; ") + ")"
	}
	return cell(t)
}

func enumText(e any) string {
	var parts []string
	switch l := e.(type) {
	case []string:
		for _, v := range l {
			parts = append(parts, "`"+v+"`")
		}
	case []any:
		for _, v := range l {
			parts = append(parts, "`"+fmt.Sprint(v)+"`")
		}
	}
	return strings.Join(parts, ", ")
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// cell keeps a table cell on one line.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// anchor is GitHub's heading anchor for a heading's text.
func anchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}
