// Command manager runs the Podium operator; `manager fetch` downloads a model bundle (see fetch.go).
package main

import (
	"flag"
	"os"

	// All Kubernetes client auth plugins (Azure, GCP, OIDC, ...) for out-of-cluster runs.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	// `manager fetch ...` downloads a model bundle: the init container of prediction pods runs it.
	if len(os.Args) > 1 && os.Args[1] == "fetch" {
		os.Exit(fetchMain(os.Args[2:], os.Stdout, os.Stderr))
	}

	opts := &managerOptions{}
	opts.bindFlags(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := runManager(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.WithName("setup").Error(err, "Manager failed")
		os.Exit(1)
	}
}
