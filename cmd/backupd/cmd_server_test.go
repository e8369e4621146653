//go:build !lean

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"backupd/config"
)

func writeCert(t *testing.T, dir, name string, tpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if parentKey == nil {
		parent, parentKey = tpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// The Temporal client's TLS settings verify the server against the given
// CA and present the client certificate (mutual TLS): checked against a
// TLS server that requires exactly that.
func TestTemporalTLSConfig(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	srvCert, srvKey := writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "temporal"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "backupd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "backupd" {
			w.WriteHeader(403)
		}
	}))
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}}}
	srv.StartTLS()
	defer srv.Close()

	none, err := temporalTLS(config.Temporal{Address: "127.0.0.1:7233"})
	if err != nil || none != nil {
		t.Fatalf("no TLS configured: %v %v", none, err)
	}
	tc, err := temporalTLS(config.Temporal{Address: srv.Listener.Addr().String(), TLSCert: filepath.Join(dir, "client.pem"),
		TLSKey: filepath.Join(dir, "client-key.pem"), TLSCA: filepath.Join(dir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}).Get(srv.URL)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("mutual TLS: %v %v", err, res)
	}
	if _, err := temporalTLS(config.Temporal{Address: "x:1", TLSCA: filepath.Join(dir, "client-key.pem")}); err == nil {
		t.Fatal("a CA file without certificates was accepted")
	}
}

// --metrics-listen, else BACKUPD_METRICS_LISTEN, else api.metrics_listen;
// unset, no metrics listener is opened.
func TestMetricsListenFlagAndVariable(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "backupd.yaml")
	os.WriteFile(cfgPath, []byte("api:\n  metrics_listen: 127.0.0.1:9001\n"), 0o600)
	load := func(args ...string) string {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := addServerFlags(fs)
		if err := fs.Parse(append([]string{"--config", cfgPath}, args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.load()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.API.MetricsListen
	}
	if got := load(); got != "127.0.0.1:9001" {
		t.Errorf("from the file: %q", got)
	}
	t.Setenv("BACKUPD_METRICS_LISTEN", "127.0.0.1:9002")
	if got := load(); got != "127.0.0.1:9002" {
		t.Errorf("from the variable: %q", got)
	}
	if got := load("--metrics-listen", "127.0.0.1:9003"); got != "127.0.0.1:9003" {
		t.Errorf("from the flag: %q", got)
	}
	os.WriteFile(cfgPath, []byte("host: x\n"), 0o600)
	t.Setenv("BACKUPD_METRICS_LISTEN", "")
	if got := load(); got != "" {
		t.Errorf("unset: %q", got)
	}
}
