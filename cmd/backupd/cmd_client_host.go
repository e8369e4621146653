package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"backupd/api"
	"backupd/apiclient"
)

const hostUsage = `Usage: backupd host <command> [flags]   (through the API server)

  list                [--state online|offline|revoked] [--labels site=berlin,...]
  show                ID|NAME
  enrol-token         [--name N] [--label KEY=VALUE ...] [--valid-hours 24]   (admin)
                      a one-time token; run the command it prints on the new host
  enrolments                                                                  (admin)
  cancel-enrolment    ID                                                      (admin)
  revoke              ID|NAME   the host's credential and worker are refused from now on (admin)
  quota               ID|NAME --soft SIZE --hard SIZE   what its backups may add to storage, e.g. 400GB (0: none; admin)

Every command: --server URL (BACKUPD_SERVER), --token (BACKUPD_TOKEN) or --token-file, --ca-file, --config, --json.
`

var hostCommands = []string{"list", "show", "enrol-token", "enrolments", "cancel-enrolment", "revoke", "quota"}

func cmdClientHost(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, hostUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "list":
		return hostList(ctx, args[1:])
	case "show":
		return hostShow(ctx, args[1:])
	case "enrol-token":
		return hostEnrolToken(ctx, args[1:])
	case "enrolments":
		return hostEnrolments(ctx, args[1:])
	case "cancel-enrolment":
		return hostCancelEnrolment(ctx, args[1:])
	case "revoke":
		return hostRevoke(ctx, args[1:])
	case "quota":
		return hostQuota(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "backupd host: unknown command %q\n\n%s", args[0], hostUsage)
	return errUsage
}

func labelString(l map[string]string) string {
	var kv []string
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func hostList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var state, labels string
	fs.StringVar(&state, "state", "", "only hosts in this state: online, offline or revoked")
	fs.StringVar(&labels, "labels", "", "only hosts with these labels: key=value[,key=value...]")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	list, raw, err := s.c.Hosts(ctx, apiHostQuery(state, labels))
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	rows := make([][]string, 0, len(list.Hosts))
	for _, h := range list.Hosts {
		seen := "-"
		if h.LastSeen != nil {
			seen = *h.LastSeen
		}
		var comps []string
		for _, c := range h.Components {
			comps = append(comps, c.Name)
		}
		rows = append(rows, []string{h.Name, h.ID, h.State, seen, h.Version, labelString(h.Labels), strings.Join(comps, ","),
			fmt.Sprint(h.Backups), s.size(h.StorageBytes)})
	}
	s.table([]string{"NAME", "ID", "STATE", "LAST SEEN", "VERSION", "LABELS", "COMPONENTS", "BACKUPS", "STORED"}, rows)
	return nil
}

func hostShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host show", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, pos, err := cf.open(fs, args, "host")
	if err != nil {
		return err
	}
	h, raw, err := s.c.Host(ctx, pos[0])
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	seen := "never"
	if h.LastSeen != nil {
		seen = *h.LastSeen
	}
	fmt.Fprintf(s.out, "host        %s (%s)\nstate       %s, last seen %s\ntask queue  %s\nenrolled    %s by %s\n",
		h.Name, h.ID, h.State, seen, h.TaskQueue, h.Enrolled, h.EnrolledBy)
	if h.Revoked != nil {
		fmt.Fprintf(s.out, "revoked     %s\n", *h.Revoked)
	}
	fmt.Fprintf(s.out, "version     %s\nos          %s\nhardware    %s\nlabels      %s\nbackups     %d, %s stored\n",
		h.Version, h.OS, h.HardwareID, labelString(h.Labels), h.Backups, humanSize(h.StorageBytes))
	for _, c := range h.Components {
		last := "no backup yet"
		if b, ok := h.LastBackups[c.Name]; ok {
			last = "last " + b.BackupID + " at " + b.Timestamp
		}
		fmt.Fprintf(s.out, "component   %s (%s) %s: %s\n", c.Name, c.Kind, strings.Join(c.Paths, ","), last)
	}
	return nil
}

func hostEnrolToken(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host enrol-token", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var req api.EnrolmentRequest
	var labels multiFlag
	var hours int
	fs.StringVar(&req.Name, "name", "", "the name the host gets (default: the one it gives)")
	fs.Var(&labels, "label", "KEY=VALUE the host gets (repeatable)")
	fs.IntVar(&hours, "valid-hours", 24, "how long the token can be used (1..720)")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usageErr("--label %q: want KEY=VALUE", l)
		}
		if req.Labels == nil {
			req.Labels = map[string]string{}
		}
		req.Labels[k] = v
	}
	req.ValidHours = &hours
	ans, raw, err := s.c.CreateEnrolment(ctx, req)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	fmt.Fprintf(s.out, "%s\n", ans.Token)
	fmt.Fprintf(s.errw, "enrolment %s, valid until %s. On the new host, run:\n  BACKUPD_ENROL_TOKEN=%s %s\n",
		ans.ID, ans.Expires, ans.Token, strings.Replace(ans.Command, " "+ans.Token, "", 1))
	return nil
}

func hostEnrolments(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host enrolments", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	list, raw, err := s.c.Enrolments(ctx)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	rows := make([][]string, 0, len(list.Enrolments))
	for _, e := range list.Enrolments {
		rows = append(rows, []string{e.ID, e.State, e.Name, labelString(e.Labels), e.Expires, e.CreatedBy, e.HostID})
	}
	s.table([]string{"ID", "STATE", "NAME", "LABELS", "EXPIRES", "CREATED BY", "HOST"}, rows)
	return nil
}

func hostCancelEnrolment(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host cancel-enrolment", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, pos, err := cf.open(fs, args, "enrolment")
	if err != nil {
		return err
	}
	ans, raw, err := s.c.CancelEnrolment(ctx, pos[0])
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	fmt.Fprintf(s.out, "enrolment %s cancelled\n", ans.ID)
	return nil
}

func hostRevoke(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host revoke", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, pos, err := cf.open(fs, args, "host")
	if err != nil {
		return err
	}
	ans, raw, err := s.c.RevokeHost(ctx, pos[0])
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	fmt.Fprintf(s.out, "host %s (%s) revoked: its worker is refused from now on; its backups stay\n", ans.Name, ans.ID)
	return nil
}

func apiHostQuery(state, labels string) apiclient.HostQuery {
	return apiclient.HostQuery{State: state, Labels: labels}
}

func hostQuota(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd host quota", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var soft, hard string
	fs.StringVar(&soft, "soft", "", "past this, the host's backups warn (e.g. 400GB; 0: none) (required)")
	fs.StringVar(&hard, "hard", "", "past this, new backups of the host are refused (e.g. 500GB; 0: none) (required)")
	s, pos, err := cf.open(fs, args, "host")
	if err != nil {
		return err
	}
	if soft == "" || hard == "" {
		return usageErr("give both --soft and --hard (0 for no limit)")
	}
	var n [2]int64
	for i, v := range []string{soft, hard} {
		if n[i], err = api.ParseSize(v); err != nil {
			return usageErr("--%s %q: %v", []string{"soft", "hard"}[i], v, err)
		}
	}
	ans, raw, err := s.c.SetHostQuota(ctx, pos[0], n[0], n[1])
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	fmt.Fprintf(s.out, "host %s: soft quota %s, hard quota %s (%s now)\n", ans.Name, humanSize(ans.Quota.SoftBytes), humanSize(ans.Quota.HardBytes), ans.Quota.State)
	return nil
}
