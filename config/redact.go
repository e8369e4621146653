package config

import (
	"net/url"
	"reflect"
	"regexp"
	"strings"
)

// Redacted is the text that replaces a secret.
const Redacted = "[REDACTED]"

// secretName matches the names of settings (YAML keys, URL query
// parameters, DSN keywords, log attributes) whose values are secrets.
var secretName = regexp.MustCompile(`(?i)(secret|passw|passphrase|pwd|token|credential|private|key|auth|signature|cookie|^pass$)`)

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

// dsnPair is one keyword=value of a libpq-style DSN (value quoted or not).
var dsnPair = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

var userinfo = regexp.MustCompile(`(^|://)([^:/?#@\s]*):[^@\s]*@`)

// RedactString removes the secrets a free-form value can carry: a URL's
// password and its secret query parameters (s3://b/p?secret_key=...),
// and the secret keywords of a key=value DSN (password=...).
func RedactString(s string) string {
	if s == "" {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && (u.Host != "" || u.User != nil || u.RawQuery != "") {
		changed := false
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), Redacted)
				changed = true
			}
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k := range q {
				if IsSecretName(k) {
					q[k] = []string{Redacted}
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
		if !changed {
			return s
		}
		return u.String()
	}
	// not a URL Go can parse (a MySQL DSN user:password@tcp(host)/db), but
	// it may still carry user:password@
	s = userinfo.ReplaceAllString(s, "${1}${2}:"+Redacted+"@")
	return dsnPair.ReplaceAllStringFunc(s, func(pair string) string {
		m := dsnPair.FindStringSubmatch(pair)
		if IsSecretName(m[1]) {
			return m[1] + "=" + Redacted
		}
		return pair
	})
}
