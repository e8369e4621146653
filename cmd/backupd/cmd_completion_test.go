package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// completionScript is what `backupd completion SHELL` prints.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		done <- []byte(b.String())
	}()
	code := run(t.Context(), []string{"completion", shell})
	w.Close()
	os.Stdout = stdout
	out := <-done
	if code != exitOK {
		t.Fatalf("backupd completion %s: exit %d", shell, code)
	}
	path := filepath.Join(t.TempDir(), "backupd."+shell)
	os.WriteFile(path, out, 0o644)
	return path
}

// complete runs the script's completion function in a real shell for the
// command line words (the last one is the word being completed).
func complete(t *testing.T, shell, script string, words ...string) []string {
	t.Helper()
	var prog string
	args := []string{}
	switch shell {
	case "bash":
		prog = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _backupd; printf '%s\n' "${COMPREPLY[@]}"`
		args = append([]string{"--norc", "--noprofile", "-c", prog, "bash", script}, words...)
	case "zsh":
		// outside an interactive completion, stand-ins for zsh's
		// completion functions print what the script offers (_describe
		// keeps, as zsh's does, the candidates the word is a prefix of)
		prog = `compdef() { :; }; _files() { print -r -- '<files>'; }
_describe() { local -a c; c=("${(@P)${@[-1]}}"); c=("${(@)c%%:*}"); print -rl -- ${(M)c:#${words[CURRENT]}*}; }
source "$1"; shift; words=("$@"); CURRENT=$#; _backupd`
		args = append([]string{"-f", "-c", prog, "zsh", script}, words...)
	}
	out, err := exec.Command(shell, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s completion of %q: %v\n%s", shell, words, err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	sort.Strings(got)
	return got
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestCompletionOffersEveryCommandAndItsFlags(t *testing.T) {
	nodes, err := completionTree()
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"bash", "zsh"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("no %s here", shell)
			}
			script := completionScript(t, shell)
			eq := func(words []string, want []string) {
				t.Helper()
				if got := complete(t, shell, script, words...); strings.Join(got, " ") != strings.Join(sorted(want), " ") {
					t.Errorf("%q: got %q, want %q", words, got, sorted(want))
				}
			}
			var top []string
			for _, c := range commandTable() {
				top = append(top, c.name)
			}
			eq([]string{"backupd", ""}, top)
			eq([]string{"backupd", "key"}, nil)
			eq([]string{"backupd", "repo", "key", ""}, []string{"add", "list", "remove", "rotate"})
			eq([]string{"backupd", "re"}, []string{"repo", "restore"})
			eq([]string{"backupd", "schedule", ""}, []string{"create", "delete", "list", "trigger"})
			eq([]string{"backupd", "completion", ""}, []string{"bash", "zsh"})
			eq([]string{"backupd", "restore", "start", "--target", "/tmp/x", "--ov"}, []string{"--overwrite"})
			eq([]string{"backupd", "backup", "list", "--s"}, []string{"--schedule", "--server", "--since", "--status"})
			eq([]string{"backupd", "repo", "backup", "--rsa"}, []string{"--rsa-private-key"})
			if shell == "bash" {
				// a flag's value: no words, so bash completes file names
				eq([]string{"backupd", "server", "--config", ""}, nil)
			} else {
				eq([]string{"backupd", "server", "--config", ""}, []string{"<files>"})
			}
			// every command path of the table, with exactly its flags
			leaves := 0
			for _, n := range nodes {
				words := append([]string{"backupd"}, strings.Fields(n.path)...)
				if !n.leaf {
					eq(append(words, ""), n.words)
					continue
				}
				leaves++
				var want []string
				for _, f := range n.flags {
					want = append(want, "--"+f.Name)
				}
				eq(append(words, "-"), want)
			}
			if leaves < 25 {
				t.Errorf("only %d commands with flags: the table lost some", leaves)
			}
		})
	}
}

// The probe sees the flags the commands define (spot checks against the
// flags written in their files).
func TestFlagsOfProbesTheCommandItself(t *testing.T) {
	for path, want := range map[string][]string{
		"server":          {"config", "listen", "tls-cert", "tls-key"},
		"worker":          {"config"},
		"repo restore":    {"repo", "password-file", "backup", "target", "overwrite", "no-verify"},
		"repo key remove": {"repo", "id"},
		"backup verify":   {"config", "server", "token", "token-file", "ca-file", "json", "location", "read-data-percent", "wait"},
		"restore start":   {"backup", "target", "original", "component", "path", "overwrite", "wait"},
		"schedule create": {"id", "frequency", "components", "enabled"},
		"token create":    {"config", "role", "name", "expires"},
		"catalog rebuild": {"config", "json"},
	} {
		flags, err := flagsOf(strings.Fields(path))
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, f := range flags {
			have[f.Name] = true
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("%s: no --%s among %v", path, w, have)
			}
		}
	}
	if _, err := flagsOf([]string{"repo", "key", "frobnicate"}); err == nil {
		t.Error("an unknown command probed without error")
	}
}

func TestCompletionRefusesAnUnknownShell(t *testing.T) {
	if code := run(t.Context(), []string{"completion", "fish"}); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
}

// zshDriver runs an interactive zsh in a pseudo-terminal (zsh/zpty) with
// the script installed as a completion function, types $1 and a tab, and
// prints what the terminal shows until $2 appears (or 5 s pass).
const zshDriver = `zmodload zsh/zpty
zpty z 'TERM=dumb zsh -f -i'
zpty -w z "fpath=(${(q)3} \$fpath); autoload -Uz compinit; compinit -u -D; backupd() { :; }; PS1='RE''ADY> '"
out=""
for i in {1..100}; do zpty -r -t z chunk && out+=$chunk; [[ $out == *"READY> "* ]] && break; sleep 0.05; done
zpty -w -n z "$1"$'\t'
out=""
for i in {1..100}; do zpty -r -t z chunk && out+=$chunk; [[ $out == *"$2"* ]] && break; sleep 0.05; done
print -r -- "$out"
zpty -d z
`

// The zsh script in a real interactive zsh: compinit loads it from fpath
// and a tab completes the word.
func TestCompletionInInteractiveZsh(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("no zsh here")
	}
	if exec.Command("zsh", "-f", "-c", "zmodload zsh/zpty").Run() != nil {
		t.Skip("zsh has no zpty module")
	}
	script := completionScript(t, "zsh")
	fpath := t.TempDir()
	b, _ := os.ReadFile(script)
	os.WriteFile(filepath.Join(fpath, "_backupd"), b, 0o644)
	for typed, want := range map[string]string{
		"backupd repo ke":            "backupd repo key ",
		"backupd restore start --ov": "backupd restore start --overwrite ",
		"backupd debug-b":            "backupd debug-bundle ",
	} {
		out, err := exec.Command("zsh", "-f", "-c", zshDriver, "zsh", typed, want, fpath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("zsh completion of %q: %v; the terminal showed:\n%q", typed, err, out)
		}
	}
}
