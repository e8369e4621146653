package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The benchmark report judges the targets of the cases the run measured:
// a run of case B alone (CASES=B bench/run.sh) listed case A's targets as
// missed ("no figure") and did not judge case B's.
func TestBenchReportJudgesTheCasesRun(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (bench/run.sh needs it too)")
	}
	dir := t.TempDir()
	meta := filepath.Join(dir, "meta.tsv")
	runs := filepath.Join(dir, "runs.csv")
	os.WriteFile(meta, []byte("date\ttest\n"), 0o644)
	os.WriteFile(runs, []byte("case,run,tool,phase,status,wall_s,rss_kb,src_bytes,repo_bytes,note\n"+
		"B,1,backupd,full,ok,5.0,200000,500000000,330000000,\n"+
		"B,1,restic,full,ok,18.0,210000,500000000,358000000,\n"), 0o644)
	out, err := exec.Command(py, "../bench/lib/report.py", meta, runs).CombinedOutput()
	if err != nil {
		t.Fatalf("report.py: %v\n%s", err, out)
	}
	report := string(out)
	if !strings.Contains(report, "| B full backup vs restic | ≥2.0× faster | 3.60× | PASS |") {
		t.Errorf("case B's target is not judged:\n%s", report)
	}
	if strings.Contains(report, "| A ") {
		t.Errorf("case A's targets are judged in a run without case A:\n%s", report)
	}
}
