// Command kubectl-podium is the kubectl plugin for Podium: with the binary on PATH, run it as
// `kubectl podium`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/podium-dev/podium/internal/cli"
)

func main() {
	ctrllog.SetLogger(logr.Discard()) // the client logs nothing a person needs
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := cli.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
