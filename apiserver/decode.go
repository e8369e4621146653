package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"backupd/api"
	"backupd/codes"
)

// maxBody caps request bodies: every request of the spec fits in a few KB.
const maxBody = 1 << 20

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// decode reads a JSON body strictly: one object, no unknown fields, the
// right types, at most maxBody bytes. Its errors name the field.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: string(codes.InvalidConfiguration),
				Message: fmt.Sprintf("Content-Type %q: the body must be application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "REQUEST_TOO_LARGE",
			Message: fmt.Sprintf("request body exceeds %d bytes", maxBody)}
	}
	if err != nil {
		return badRequest("", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "empty request body: a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, body, v)
	}
	if dec.More() {
		return badRequest("", "malformed JSON: extra data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "malformed JSON: extra data after the object")
	}
	return nil
}

// jsonError names what is wrong with a body that did not decode into v.
func jsonError(err error, body []byte, v any) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var fe *api.FieldError
	switch {
	case errors.As(err, &fe):
		return badRequest(fe.Field, "%s: %s", fe.Field, fe.Msg)
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return badRequest(field, "%s: expected %s, got JSON %s", field, jsonTypeName(te.Type.String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: unexpected end of the body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		path, allowed, ok := api.UnknownField(body, v)
		if !ok {
			return badRequest(f, "unknown field %q", f)
		}
		e := badRequest(path, "unknown field %q (allowed here: %s)", path, strings.Join(allowed, ", "))
		e.Details["allowed_fields"] = allowed
		e.Actions = []string{"Remove or rename the field " + path + "; the fields allowed there are: " + strings.Join(allowed, ", ")}
		return e
	}
	return badRequest("", "invalid JSON: %v", err)
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "an object"
	}
	return goType
}

// oneOf checks an enum value.
func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return badRequest(field, "%s: %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

type jsonRaw = json.RawMessage

// strictUnmarshal decodes a nested object with the same rules as decode,
// prefixing field names with where it sits.
func strictUnmarshal(b []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		e := jsonError(err, b, v)
		var ae *apiError
		if errors.As(e, &ae) {
			f, _ := ae.Details["field"].(string)
			if f == "" || f == "(body)" {
				f = prefix
			} else {
				f = prefix + "." + f
			}
			ae.Details["field"] = f
			ae.Message = prefix + ": " + ae.Message
		}
		return e
	}
	return nil
}
