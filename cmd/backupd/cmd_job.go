package main

import (
	"backupd/activities"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"backupd/jobs"
	"backupd/workflows"
)

const jobUsage = `Usage: backupd job <command> [--config FILE] [flags]

  backup   --components a,b [--type full] [--locations local,cloud,remote] [--compression zstd] [--verify] [--wait]
  restore  --backup ID --target DIR [--location local] [--component C] [--path P] [--overwrite] [--wait]
  verify   --backup ID [--location local] [--read-data-percent N] [--extract] [--wait]
  progress --job ID
  cancel | pause | resume --job ID
`

// jobCommands are the commands of `backupd job` (its switch below).
var jobCommands = []string{"backup", "restore", "verify", "progress", "cancel", "pause", "resume"}

func cmdJob(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, jobUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("backupd job "+sub, flag.ContinueOnError)
	var comps, locs, typ, compression, backupID, target, location, jobID string
	var paths, components multiFlag
	var verify, wait, overwrite, extract bool
	var percent float64
	switch sub {
	case "backup":
		fs.StringVar(&comps, "components", "", "comma-separated component names")
		fs.StringVar(&typ, "type", "full", "full | incremental | differential | snapshot")
		fs.StringVar(&locs, "locations", "", "comma-separated storage locations (default: all, primary first)")
		fs.StringVar(&compression, "compression", "zstd", "zstd | gzip | bzip2 | lz4 | none")
		fs.BoolVar(&verify, "verify", false, "verify after completion")
	case "restore":
		fs.StringVar(&backupID, "backup", "", "backup id")
		fs.StringVar(&target, "target", "", "target directory")
		fs.StringVar(&location, "location", "", "storage location to restore from (default: primary)")
		fs.Var(&components, "component", "restore only this component (repeatable)")
		fs.Var(&paths, "path", "restore only this path (repeatable)")
		fs.BoolVar(&overwrite, "overwrite", false, "restore into a non-empty directory")
	case "verify":
		fs.StringVar(&backupID, "backup", "", "backup id")
		fs.StringVar(&location, "location", "", "storage location (default: primary)")
		fs.Float64Var(&percent, "read-data-percent", 0, "share of packs to read")
		fs.BoolVar(&extract, "extract", false, "also restore into a scratch directory")
	case "progress", "cancel", "pause", "resume":
		fs.StringVar(&jobID, "job", "", "job id")
	default:
		fmt.Fprint(os.Stderr, jobUsage)
		return errUsage
	}
	fs.BoolVar(&wait, "wait", false, "wait for the job to end, showing its progress")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	c, err := dialTemporal(cfg, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	jc := jobClient(cfg, c)
	if location == "" {
		location = cfg.Primary
	}
	// jobs record themselves in the catalog whenever a server runs its
	// catalog activities; otherwise the server adopts the backup from
	// storage when it next reconciles
	catalogQueue := ""
	if sub == "backup" || sub == "restore" || sub == "verify" {
		if catalogServed(ctx, c) {
			catalogQueue = activities.CatalogTaskQueue
		} else {
			fmt.Fprintln(os.Stderr, "backupd job: no API server is running its catalog activities; the job is not in the catalog until a server reconciles it from storage")
		}
	}
	var job *jobs.Job
	switch sub {
	case "backup":
		req := workflows.BackupRequest{Type: typ, Compression: compression, Verify: verify,
			Components: splitList(comps), Locations: splitList(locs), CatalogQueue: catalogQueue}
		if len(req.Components) == 0 {
			req.Components = cfg.ComponentNames()
		}
		if len(req.Locations) == 0 {
			req.Locations = cfg.LocationNames()
		}
		job, err = jc.StartBackup(ctx, req, 0)
	case "restore":
		job, err = jc.StartRestore(ctx, workflows.RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: backupID,
			Location: location, Target: target, Components: components, Paths: paths, Overwrite: overwrite}, VerifyBefore: true, CatalogQueue: catalogQueue})
	case "verify":
		job, err = jc.StartVerify(ctx, workflows.VerifyRequest{BackupID: backupID, Location: location,
			ReadDataPercent: percent, ExtractTest: extract, CatalogQueue: catalogQueue})
	default:
		job, err = jc.Find(ctx, jobID)
		if err != nil {
			return err
		}
		switch sub {
		case "progress":
			p, err := jc.Progress(ctx, job)
			if err != nil {
				return err
			}
			return printJSON(p)
		case "cancel":
			err = jc.Cancel(ctx, job)
		case "pause":
			err = jc.Pause(ctx, job)
		case "resume":
			err = jc.Resume(ctx, job)
		}
		if err == nil {
			fmt.Printf("%s: %s requested\n", jobID, sub)
		}
		return err
	}
	if err != nil {
		return err
	}
	if !wait {
		return printJSON(job)
	}
	fmt.Fprintf(os.Stderr, "job %s (workflow %s)\n", job.JobID, job.WorkflowID)
	pl := newProgressLine(false)
	done := make(chan error, 1)
	go func() {
		done <- c.GetWorkflow(ctx, job.WorkflowID, job.RunID).Get(ctx, nil)
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			pl.done()
			p, perr := jc.Progress(ctx, job)
			if perr == nil {
				printJSON(p)
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", job.JobID, err)
			}
			return nil
		case <-t.C:
			if p, err := jc.Progress(ctx, job); err == nil {
				pl.show("[%s] %s %.0f%% %s %s", p.Elapsed, p.Status, p.Percentage, p.CurrentOperation, p.CurrentComponent)
			}
		case <-ctx.Done():
			return errors.New("interrupted (the job goes on; cancel it with 'backupd job cancel')")
		}
	}
}

// catalogServed reports whether a server polls the catalog task queue.
func catalogServed(ctx context.Context, c client.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d, err := c.DescribeTaskQueue(ctx, activities.CatalogTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	return err == nil && len(d.Pollers) > 0
}
