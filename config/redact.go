package config

import (
	"reflect"
	"regexp"
	"strings"
)

// Redacted is the text that replaces a secret.
const Redacted = "[REDACTED]"

// secretName matches the names of settings (YAML keys, URL query
// parameters, DSN keywords, log attributes) whose values are secrets.
// "key" alone is not one (an S3 object key); access_key, key_id are.
var secretName = regexp.MustCompile(`(?i)(secret|passw|passphrase|pwd|token|credential|private|auth|signature|cookie|^pass$|.key$|^key.|apikey)`)

// pathName matches names whose value is the path of a file (the secret is
// in the file, not in the configuration): password_file, passfile,
// secret_file. A field can say the same with the tag redact:"path".
var pathName = regexp.MustCompile(`(?i)(file|_files?|_path)$`)

// IsSecretName says whether a setting of this name holds a secret.
func IsSecretName(name string) bool {
	return secretName.MatchString(name) && !pathName.MatchString(name)
}

// Redact returns a deep copy of c with every secret replaced by
// Redacted, for showing a configuration (debug bundles). It walks the
// fields themselves, so a field added later is covered by its name: a
// string field whose YAML name says secret, password, token, key, ...
// is replaced whole (unless it names a file: *_file, or tag
// redact:"path"); every other string is scrubbed of the secrets a value
// can carry inside it (a URL's password and secret query parameters, a
// DSN's password=...).
func Redact(c *Config) *Config {
	v := reflect.New(reflect.TypeOf(*c)).Elem()
	redactValue(v, reflect.ValueOf(*c), false)
	out := v.Addr().Interface().(*Config)
	return out
}

// redactValue copies src into dst (a settable value of the same type).
func redactValue(dst, src reflect.Value, secret bool) {
	switch src.Kind() {
	case reflect.String:
		s := src.String()
		switch {
		case secret && s != "":
			s = Redacted
		default:
			s = RedactString(s)
		}
		dst.SetString(s)
	case reflect.Struct:
		t := src.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" {
				name = f.Name
			}
			sec := secret || (IsSecretName(name) && f.Tag.Get("redact") != "path")
			redactValue(dst.Field(i), src.Field(i), sec)
		}
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		redactValue(p.Elem(), src.Elem(), secret)
		dst.Set(p)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := 0; i < src.Len(); i++ {
			redactValue(s.Index(i), src.Index(i), secret)
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		iter := src.MapRange()
		for iter.Next() {
			k := iter.Key()
			sec := secret || (k.Kind() == reflect.String && IsSecretName(k.String()))
			e := reflect.New(src.Type().Elem()).Elem()
			redactValue(e, iter.Value(), sec)
			m.SetMapIndex(k, e)
		}
		dst.Set(m)
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		e := reflect.New(src.Elem().Type()).Elem()
		redactValue(e, src.Elem(), secret)
		dst.Set(e)
	default:
		// numbers and booleans: a secret one has no place to hide a
		// marker, so it is zeroed
		if !secret {
			dst.Set(src)
		}
	}
}

// Secrets inside free text: key=value pairs (a URL's query, a DSN's
// keywords, quoted or not), "key":"value" (JSON in an error message), and
// user:password@ (a URL, or a MySQL DSN Go's URL parser refuses).
var (
	textPair = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^&;\s"',]*)`)
	jsonPair = regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_]*)"(\s*:\s*)"((?:[^"\\]|\\.)*)"`)
	userinfo = regexp.MustCompile(`(^|://|\s)([^:/?#@\s]*):(?:[^@\s/][^@\s]*)?@`)
)

// RedactString removes the secrets a free-form value can carry (a URL, a
// DSN, an error message quoting either): a URL's password, secret query
// parameters (s3://b/p?secret_key=...), a DSN's password=... .
func RedactString(s string) string {
	if s == "" {
		return s
	}
	s = userinfo.ReplaceAllString(s, "${1}${2}:"+Redacted+"@")
	s = jsonPair.ReplaceAllStringFunc(s, func(p string) string {
		m := jsonPair.FindStringSubmatch(p)
		if IsSecretName(m[1]) && m[3] != "" {
			return `"` + m[1] + `"` + m[2] + `"` + Redacted + `"`
		}
		return p
	})
	return textPair.ReplaceAllStringFunc(s, func(p string) string {
		m := textPair.FindStringSubmatch(p)
		if IsSecretName(m[1]) && m[3] != "" {
			return m[1] + m[2] + Redacted
		}
		return p
	})
}
