package apiserver

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"

	"codeberg.org/go-pdf/fpdf"

	"backupd/api"
)

// The compliance report for people: an HTML page and a PDF that an
// auditor who never saw backupd can read. Both say what each figure
// means next to it.

// complianceRow is one table row of the report's main table, as text.
type complianceRow struct {
	Who, Backups, Success, RPO, RTO, Drills, Copies string
	Bad                                             bool
}

func complianceRows(rep *api.ComplianceReport) []complianceRow {
	var out []complianceRow
	for _, c := range rep.Components {
		r := complianceRow{Who: c.Component + " (" + c.Host + ")", Copies: c.Copies321}
		if c.ImmutableCopies != "none" && c.ImmutableCopies != "" {
			r.Copies += "; immutable " + c.ImmutableCopies
		}
		r.Backups = fmt.Sprint(c.Completed, " completed")
		if c.BackupsExpected != nil {
			r.Backups += fmt.Sprint(" of ", *c.BackupsExpected, " expected")
		}
		if c.Failed+c.Partial > 0 {
			r.Backups += fmt.Sprint("; ", c.Failed+c.Partial, " not completed")
		}
		r.Success = "-"
		if c.SuccessRate != nil {
			r.Success = fmt.Sprintf("%.0f%%", 100**c.SuccessRate)
		}
		r.RPO = "never backed up"
		if c.WorstRPOSeconds != nil {
			r.RPO = "worst " + secondsWords(*c.WorstRPOSeconds)
		}
		if c.RPOObjectiveSeconds != nil {
			r.RPO += " (objective " + secondsWords(float64(*c.RPOObjectiveSeconds)) + ")"
		}
		if c.RPOBreached {
			r.RPO += ": MISSED"
		}
		r.RTO = "not measured"
		if c.WorstRTOSeconds != nil {
			r.RTO = "worst " + secondsWords(*c.WorstRTOSeconds)
		}
		if c.RTOObjectiveSeconds != nil {
			r.RTO += " (objective " + secondsWords(float64(*c.RTOObjectiveSeconds)) + ")"
		}
		if c.RTOBreached {
			r.RTO += ": MISSED"
		}
		r.Drills = fmt.Sprint(c.DrillsPassed, " of ", c.Drills, " passed")
		r.Bad = c.RPOBreached || c.RTOBreached || c.Drills > c.DrillsPassed || c.Failed+c.Partial > 0 ||
			(c.BackupsExpected != nil && c.Completed < *c.BackupsExpected)
		out = append(out, r)
	}
	return out
}

// immutableLines says, one sentence each, how every immutable location
// keeps backups.
func immutableLines(rep *api.ComplianceReport) []string {
	var out []string
	for _, im := range rep.Immutable {
		switch im.Mode {
		case "object_lock":
			out = append(out, fmt.Sprintf("%s: S3 Object Lock in %s mode; every object is locked for %s when written, and cleanups extend the locks of what kept backups need.",
				im.Location, im.LockMode, im.LockPeriod))
		default:
			out = append(out, fmt.Sprintf("%s: append-only; backupd never deletes or replaces what backups need there, and removes what no backup uses only by a maintenance run with another credential.", im.Location))
		}
	}
	return out
}

var complianceTmpl = template.Must(template.New("c").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backup compliance report {{.R.From}} to {{.R.To}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}tr.bad td{background:#fdecea}.ok{color:#1a7f37;font-weight:bold}.no{color:#b42318;font-weight:bold}
p.note{color:#555;font-size:.92em}
</style></head><body>
<h1>Backup compliance report</h1>
<p>Period: <b>{{.R.From}}</b> to <b>{{.R.To}}</b> ({{.R.Period}}). Generated {{.R.GeneratedAt}} by backupd.</p>
<p>Verdict: {{if .R.Summary.Compliant}}<span class="ok">no findings</span>{{else}}<span class="no">{{len .R.Summary.Findings}} finding(s)</span>{{end}}.
{{.R.Summary.BackupsTaken}} backups were taken{{if .Rate}}, {{.Rate}} of them completed{{end}}; {{.R.Summary.DrillsRun}} restore drills ran, {{.R.Summary.DrillsPassed}} passed.</p>
{{if .R.Summary.Findings}}<h2>Findings</h2><ul>{{range .R.Summary.Findings}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h2>Components</h2>
<p class="note">A component is a set of data backed up together (files or a database) on one host.
<b>Backups</b>: completed backups in the period, against what its schedules should have taken.
<b>RPO</b> (recovery point objective): the most data, measured in time, that could have been lost at the worst moment of the period (the longest time without a newer completed backup), against the objective set for the component.
<b>RTO</b> (recovery time objective): how long a full restore of the component took in restore drills (a test restore into a scratch directory, every file compared with the backup), against its objective.
<b>3-2-1</b>: completed backups that have the copies the replication policy asks for (several copies, on different media, one off site), of all completed backups; "immutable": those with a copy in an immutable location.</p>
<table><tr><th>Component (host)</th><th>Backups</th><th>Success</th><th>RPO</th><th>RTO</th><th>Restore drills</th><th>3-2-1</th></tr>
{{range .Rows}}<tr{{if .Bad}} class="bad"{{end}}><td>{{.Who}}</td><td>{{.Backups}}</td><td>{{.Success}}</td><td>{{.RPO}}</td><td>{{.RTO}}</td><td>{{.Drills}}</td><td>{{.Copies}}</td></tr>
{{end}}</table>
<h2>Encryption</h2>
<p>Every backup is encrypted ({{.R.Encryption.Algorithm}}). {{if .R.Encryption.KeyCreated}}The repository key was last rotated {{.R.Encryption.KeyCreated}} ({{.R.Encryption.KeyAgeDays}} days ago); the policy rotates it every {{.R.Encryption.RotationDays}} days: {{if .R.Encryption.RotationDue}}<span class="no">rotation due</span>{{else}}<span class="ok">within policy</span>{{end}}.{{else}}The key's age could not be read.{{end}}</p>
<h2>Immutable copies</h2>
<p class="note">An immutable location keeps backups from deletion by anyone, backupd and its credentials included: the storage server refuses (S3 Object Lock), or backupd only adds to it and the server refuses the account's deletions (append-only).</p>
{{range .Immutable}}<p>{{.}}</p>
{{else}}<p>No location is immutable: a stolen storage credential could delete every copy.</p>{{end}}
<h2>Retention</h2>
<p class="note">Backups are removed only by cleanups that apply the retention policy (or by an explicit, audited delete). Each removal names the rule that decided it.</p>
<p>{{.R.Retention.Cleanups}} cleanup(s) removed {{len .R.Retention.Removed}} backup(s).</p>
{{if .R.Retention.Removed}}<table><tr><th>Backup</th><th>Taken</th><th>Removed</th><th>Why</th></tr>
{{range .R.Retention.Removed}}<tr><td>{{.BackupID}}{{if .Host}} ({{.Host}}){{end}}</td><td>{{.Taken}}</td><td>{{.Removed}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{end}}
<h2>Protected backups</h2>
<p class="note">Protected backups are never removed by a cleanup.</p>
{{if .R.Protected}}<table><tr><th>Backup</th><th>Host</th><th>Taken</th><th>Components</th></tr>
{{range .R.Protected}}<tr><td>{{.BackupID}}</td><td>{{.Host}}</td><td>{{.Taken}}</td><td>{{join .Components ", "}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Destructive actions (audit log)</h2>
<p class="note">Every call that deletes or overwrites data, weakens retention or protection, or revokes access is in the audit log with who made it.</p>
{{if .R.Audit}}<table><tr><th>Action</th><th>Calls</th><th>Succeeded</th><th>Refused</th><th>By</th><th>Approved by</th></tr>
{{range .R.Audit}}<tr><td>{{.Action}}</td><td>{{.Calls}}</td><td>{{.Succeeded}}</td><td>{{.Refused}}</td><td>{{join .Actors ", "}}</td><td>{{if .ApprovedBy}}{{join .ApprovedBy ", "}}{{else}}-{{end}}</td></tr>
{{end}}</table>{{else}}<p>None in the period.</p>{{end}}
</body></html>
`))

func complianceHTML(w io.Writer, rep *api.ComplianceReport) error {
	rate := ""
	if rep.Summary.SuccessRate != nil {
		rate = fmt.Sprintf("%.0f%%", 100**rep.Summary.SuccessRate)
	}
	return complianceTmpl.Execute(w, map[string]any{"R": rep, "Rows": complianceRows(rep), "Rate": rate, "Immutable": immutableLines(rep)})
}

// compliancePDF lays the same report out on A4 pages.
func compliancePDF(rep *api.ComplianceReport) ([]byte, error) {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetTitle("Backup compliance report", true)
	pdf.SetCreator("backupd", true)
	pdf.SetAutoPageBreak(true, 12)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252 for the core fonts
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-10)
		pdf.SetFont("Helvetica", "", 8)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("backupd compliance report %s to %s - page %d of {nb}", rep.From, rep.To, pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	h1 := func(s string) {
		pdf.SetFont("Helvetica", "B", 16)
		pdf.MultiCell(0, 9, tr(s), "", "L", false)
	}
	h2 := func(s string) {
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 12)
		pdf.MultiCell(0, 7, tr(s), "B", "L", false)
		pdf.Ln(1)
	}
	para := func(s string) {
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 5, tr(s), "", "L", false)
	}
	note := func(s string) {
		pdf.SetFont("Helvetica", "I", 8.5)
		pdf.SetTextColor(80, 80, 80)
		pdf.MultiCell(0, 4.2, tr(s), "", "L", false)
		pdf.SetTextColor(0, 0, 0)
	}
	table := func(widths []float64, head []string, rows [][]string, bad []bool) {
		line := func(cells []string, bold, red bool) {
			pdf.SetFont("Helvetica", map[bool]string{true: "B", false: ""}[bold], 8.5)
			// a cell is at most a few lines (host and component names come
			// from enrolled hosts): a row never outgrows a page, and no page
			// break falls inside one
			cells = slices.Clone(cells)
			for i, c := range cells {
				if len(c) > 300 {
					cells[i] = c[:300] + "..."
				}
			}
			pdf.SetAutoPageBreak(false, 12)
			defer pdf.SetAutoPageBreak(true, 12)
			// the row's height: its tallest cell
			lines := 1
			for i, c := range cells {
				if n := len(pdf.SplitText(tr(c), widths[i]-2)); n > lines {
					lines = n
				}
			}
			h := float64(lines)*4.2 + 1.6
			if pdf.GetY()+h > 195 {
				pdf.AddPage()
			}
			x, y := pdf.GetXY()
			for i, c := range cells {
				switch {
				case bold:
					pdf.SetFillColor(235, 235, 235)
				case red:
					pdf.SetFillColor(253, 236, 234)
				default:
					pdf.SetFillColor(255, 255, 255)
				}
				pdf.Rect(x, y, widths[i], h, "FD")
				pdf.SetXY(x+1, y+0.8)
				pdf.MultiCell(widths[i]-2, 4.2, tr(c), "", "L", false)
				x += widths[i]
				pdf.SetXY(x, y)
			}
			pdf.SetXY(10, y+h)
		}
		line(head, true, false)
		for i, r := range rows {
			line(r, false, bad != nil && bad[i])
		}
	}

	h1("Backup compliance report")
	para(fmt.Sprintf("Period: %s to %s (%s). Generated %s by backupd.", rep.From, rep.To, rep.Period, rep.GeneratedAt))
	verdict := "Verdict: no findings."
	if !rep.Summary.Compliant {
		verdict = fmt.Sprintf("Verdict: %d finding(s).", len(rep.Summary.Findings))
	}
	rate := ""
	if rep.Summary.SuccessRate != nil {
		rate = fmt.Sprintf(", %.0f%% of them completed", 100**rep.Summary.SuccessRate)
	}
	para(fmt.Sprintf("%s %d backups were taken%s; %d restore drills ran, %d passed.", verdict, rep.Summary.BackupsTaken, rate,
		rep.Summary.DrillsRun, rep.Summary.DrillsPassed))
	if len(rep.Summary.Findings) > 0 {
		h2("Findings")
		for _, f := range rep.Summary.Findings {
			para("- " + f)
		}
	}
	h2("Components")
	note("A component is a set of data backed up together (files or a database) on one host. Backups: completed backups in the period, " +
		"against what its schedules should have taken. RPO (recovery point objective): the most data, measured in time, that could have " +
		"been lost at the worst moment of the period (the longest time without a newer completed backup), against the component's objective. " +
		"RTO (recovery time objective): how long a full restore of the component took in restore drills (a test restore into a scratch " +
		"directory, every file compared with the backup), against its objective. 3-2-1: completed backups that have the copies the " +
		"replication policy asks for, of all completed backups; immutable: those with a copy in an immutable location.")
	pdf.Ln(1)
	var rows [][]string
	var bad []bool
	for _, r := range complianceRows(rep) {
		rows = append(rows, []string{r.Who, r.Backups, r.Success, r.RPO, r.RTO, r.Drills, r.Copies})
		bad = append(bad, r.Bad)
	}
	table([]float64{45, 52, 18, 55, 55, 30, 22}, []string{"Component (host)", "Backups", "Success", "RPO", "RTO", "Restore drills", "3-2-1"}, rows, bad)

	h2("Encryption")
	e := rep.Encryption
	if e.KeyCreated != nil {
		state := "within policy"
		if e.RotationDue {
			state = "rotation due"
		}
		para(fmt.Sprintf("Every backup is encrypted (%s). The repository key was last rotated %s (%d days ago); the policy rotates it every %d days: %s.",
			e.Algorithm, *e.KeyCreated, *e.KeyAgeDays, e.RotationDays, state))
	} else {
		para(fmt.Sprintf("Every backup is encrypted (%s). The key's age could not be read.", e.Algorithm))
	}

	h2("Immutable copies")
	note("An immutable location keeps backups from deletion by anyone, backupd and its credentials included: the storage server refuses (S3 Object Lock), or backupd only adds to it and the server refuses the account's deletions (append-only).")
	if lines := immutableLines(rep); len(lines) > 0 {
		for _, l := range lines {
			para(l)
		}
	} else {
		para("No location is immutable: a stolen storage credential could delete every copy.")
	}

	h2("Retention")
	note("Backups are removed only by cleanups that apply the retention policy (or by an explicit, audited delete). Each removal names the rule that decided it.")
	para(fmt.Sprintf("%d cleanup(s) removed %d backup(s).", rep.Retention.Cleanups, len(rep.Retention.Removed)))
	if len(rep.Retention.Removed) > 0 {
		rows = nil
		for _, r := range rep.Retention.Removed {
			rows = append(rows, []string{r.BackupID, r.Taken, r.Removed, r.Reason})
		}
		table([]float64{62, 35, 40, 140}, []string{"Backup", "Taken", "Removed", "Why"}, rows, nil)
	}

	h2("Protected backups")
	note("Protected backups are never removed by a cleanup.")
	if len(rep.Protected) == 0 {
		para("None.")
	} else {
		rows = nil
		for _, p := range rep.Protected {
			rows = append(rows, []string{p.BackupID, p.Host, p.Taken, strings.Join(p.Components, ", ")})
		}
		table([]float64{70, 50, 45, 112}, []string{"Backup", "Host", "Taken", "Components"}, rows, nil)
	}

	h2("Destructive actions (audit log)")
	note("Every call that deletes or overwrites data, weakens retention or protection, or revokes access is in the audit log with who made it.")
	if len(rep.Audit) == 0 {
		para("None in the period.")
	} else {
		rows = nil
		for _, a := range rep.Audit {
			ap := "-"
			if len(a.ApprovedBy) > 0 {
				ap = strings.Join(a.ApprovedBy, ", ")
			}
			rows = append(rows, []string{a.Action, fmt.Sprint(a.Calls), fmt.Sprint(a.Succeeded), fmt.Sprint(a.Refused), strings.Join(a.Actors, ", "), ap})
		}
		table([]float64{45, 18, 22, 20, 100, 72}, []string{"Action", "Calls", "Succeeded", "Refused", "By", "Approved by"}, rows, nil)
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
