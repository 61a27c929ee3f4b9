// Package testbrowser runs a real headless Chromium, Debian's chromium package that
// hack/chromium.sh installs, for tests of web pages. A test opens a page with Start, drives it
// with chromedp's actions (Navigate, Click, WaitVisible, Text, ...) on the context Start returns,
// and can keep a full-page screenshot with Screenshot and the page's console errors with
// WatchConsole.
//
// The browser downloads nothing and reaches no server but the test's own: it starts with a fresh
// profile in the test's temporary directory, with its background traffic (component and extension
// updates, sync, metrics, safe browsing) turned off, and it reaches loopback only (localhost,
// 127.0.0.1 and ::1), typically an httptest.Server; any other host fails with
// net::ERR_NAME_NOT_RESOLVED.
package testbrowser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvBinary names the Chromium binary; `make test-unit` sets it to what `hack/chromium.sh --path`
// prints.
const EnvBinary = "PODIUM_CHROMIUM"

// DefaultBinary is where Debian's chromium package puts the browser, used when EnvBinary is unset.
const DefaultBinary = "/usr/bin/chromium"

// Window size of the browser, in CSS pixels: what the page sees as its viewport, and the width of
// a screenshot.
const (
	Width  = 1280
	Height = 800
)

// closeTimeout bounds the graceful close of the browser, after which it is killed.
const closeTimeout = 5 * time.Second

// actionTimeout bounds Screenshot, so that a hung browser fails the test rather than hanging it.
const actionTimeout = 30 * time.Second

// T is what this package needs of a test: a *testing.T, or Ginkgo's GinkgoT() (which is not a
// testing.TB).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Binary returns the Chromium binary that Start runs: $PODIUM_CHROMIUM, else DefaultBinary.
func Binary() string {
	if bin := os.Getenv(EnvBinary); bin != "" {
		return bin
	}
	return DefaultBinary
}

// flags are Chromium's command-line flags besides the binary, the window size and the profile.
// The headless mode is Chromium's own (the full browser, without a window); the sandbox is off
// because tests run as root in containers, where Chromium refuses to start with it.
//
// The browser reaches loopback only: host-resolver-rules makes every host but localhost,
// 127.0.0.1 and ::1 unresolvable inside Chromium, so no DNS query leaves it, and no-proxy-server
// keeps it from handing names to a proxy of the environment. Without them Chromium 148 asks
// Google's services for things no page requested, some with no flag to turn them off (such as
// ListAccounts at accounts.google.com). The flags that do turn such requests off are there too,
// so that Chromium does not even try: the usual background networking ones, and the features
// behind the requests seen with the rest of this list. The others keep a page that is not in front
// running at full speed, keep prompts and keyrings out of the way, and make screenshots
// reproducible.
var flags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("headless", true),
	chromedp.Flag("no-sandbox", true),
	chromedp.Flag("disable-gpu", true),
	chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1"),
	chromedp.Flag("no-proxy-server", true),
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("no-first-run", true),
	chromedp.Flag("no-default-browser-check", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-extensions", true),
	chromedp.Flag("disable-default-apps", true),
	chromedp.Flag("disable-breakpad", true),
	chromedp.Flag("disable-client-side-phishing-detection", true),
	chromedp.Flag("disable-domain-reliability", true),
	chromedp.Flag("safebrowsing-disable-auto-update", true),
	chromedp.Flag("metrics-recording-only", true),
	chromedp.Flag("no-pings", true),
	chromedp.Flag("disable-features", strings.Join([]string{
		"Translate", "OptimizationHints", "MediaRouter", "CertificateTransparencyComponentUpdater",
		// The time, from clients2.google.com.
		"NetworkTimeServiceQuerying",
		// Connections to www.google.com, the default search engine.
		"PreconnectToSearch", "SearchEnginePreconnector", "DefaultSearchEnginePrewarm", "AimEnabled",
		// The types of a page's form fields, from content-autofill.googleapis.com.
		"AutofillServerCommunication",
	}, ",")),
	chromedp.Flag("disable-background-timer-throttling", true),
	chromedp.Flag("disable-backgrounding-occluded-windows", true),
	chromedp.Flag("disable-renderer-backgrounding", true),
	chromedp.Flag("disable-dev-shm-usage", true),
	chromedp.Flag("disable-hang-monitor", true),
	chromedp.Flag("disable-popup-blocking", true),
	chromedp.Flag("disable-prompt-on-repost", true),
	chromedp.Flag("password-store", "basic"),
	chromedp.Flag("use-mock-keychain", true),
	chromedp.Flag("force-color-profile", "srgb"),
	chromedp.Flag("hide-scrollbars", true),
	chromedp.Flag("mute-audio", true),
}

// preferences are the profile's initial preferences. Chromium diagnoses a page that fails to
// load for a host name it cannot resolve by asking public DNS servers (8.8.8.8) about google.com,
// past host-resolver-rules; alternate_error_pages turns that off.
const preferences = `{"alternate_error_pages": {"enabled": false}}`

// Start starts a headless Chromium for the test and returns the chromedp context of its first
// tab, on which the test runs its actions; a timeout for one action goes on a context derived
// from it. The browser, with every process it started, is killed when the test ends, whether it
// passes or fails; its profile and home directory, fresh under t.TempDir(), go with the test's
// temporary directory.
func Start(t T) context.Context {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Chromium at %s (%v): run hack/chromium.sh or `make chromium` to install Debian's chromium "+
			"package, or set %s to a Chromium binary", bin, err, EnvBinary)
	}
	// t.TempDir registers its removal before the clean-up below, so the removal runs after it.
	// Besides the profile, it holds the browser's home directory: Chromium writes under $HOME
	// whatever its profile (its crash handler's database, dconf's cache), and this keeps that out
	// of the real home.
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile")
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(profile, "Default"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), []byte(preferences), 0o600); err != nil {
		t.Fatal(err)
	}

	var cmd *exec.Cmd
	output := &syncBuffer{}
	opts := append([]chromedp.ExecAllocatorOption{chromedp.ExecPath(bin)}, flags...)
	opts = append(opts,
		chromedp.WindowSize(Width, Height),
		chromedp.UserDataDir(profile),
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache")),
		chromedp.CombinedOutput(output),
		chromedp.ModifyCmdFunc(func(c *exec.Cmd) {
			// Its own process group, so the clean-up kills every process it started; and it dies
			// with the test binary, even when that dies without running its clean-ups.
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			cmd = c
		}),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		output.printf("chromedp: "+format, args...)
	}))
	t.Cleanup(func() {
		if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil {
			// Close the browser gracefully, so that it ends its own helpers; whatever is left
			// when this fails or takes too long is killed below.
			closeCtx, cancelClose := context.WithTimeout(ctx, closeTimeout)
			_ = chromedp.Cancel(closeCtx)
			cancelClose()
		}
		cancel() // kills the browser if it still runs, and waits for it to exit
		cancelAlloc()
		if cmd != nil && cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		killLeftovers(dir)
		if t.Failed() {
			t.Logf("chromium's output:\n%s", output.String())
		}
	})

	// The first action starts the browser and binds it to ctx: a timeout on this context would
	// end the browser with it, so a test puts its timeouts on contexts derived from ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", bin, err, output.String())
	}
	return ctx
}

// Screenshot writes a full-page PNG screenshot of the tab to path, creating its directory, and
// fails the test if it cannot.
func Screenshot(t T, ctx context.Context, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking a screenshot for %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Console collects the errors that the tab writes to its console: console.error calls, uncaught
// exceptions and unhandled promise rejections, and the browser's own errors (such as a resource
// that failed to load).
type Console struct {
	mu      sync.Mutex
	errors  []string
	changed chan struct{} // closed, and replaced, when an error is added
}

// WatchConsole collects the console errors of the tab from now until the test ends. The browser
// reports them asynchronously, so an error the page writes shows up a moment later.
func WatchConsole(t T, ctx context.Context) *Console {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	messages := chromedp.Console(ctx) // subscribes now, before the test's next action
	c := &Console{changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				text := m.Text
				if m.URL != "" {
					text += " (" + m.URL + ":" + strconv.FormatInt(m.Line+1, 10) + ")"
				}
				c.mu.Lock()
				c.errors = append(c.errors, text)
				close(c.changed)
				c.changed = make(chan struct{})
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// Errors returns the console errors collected so far, each with where it came from when the
// browser says.
func (c *Console) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errors...)
}

// Wait waits until at least n console errors are collected and returns them, or returns the
// context's error with those collected so far when ctx ends first.
func (c *Console) Wait(ctx context.Context, n int) ([]string, error) {
	for {
		c.mu.Lock()
		errs, changed := append([]string(nil), c.errors...), c.changed
		c.mu.Unlock()
		if len(errs) >= n {
			return errs, nil
		}
		select {
		case <-ctx.Done():
			return errs, ctx.Err()
		case <-changed:
		}
	}
}

// killLeftovers kills the processes that still run with an argument in dir, until a few looks in a
// row find none. Chromium passes its profile (--user-data-dir) to its helpers (zygote, renderers,
// GPU and network services), and its crash handler its database under the home directory; a
// helper can fork while the browser dies, and the crash handler leaves the process group.
func killLeftovers(dir string) {
	want := []byte(dir + string(filepath.Separator))
	deadline := time.Now().Add(2 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		found := false
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(cmdline, want) {
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			found = true
		}
		if found {
			quiet = 0
		} else {
			quiet++
		}
	}
}

// syncBuffer is the browser's output, written by chromedp's goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) printf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(strings.TrimRight(fmt.Sprintf(format, args...), "\n") + "\n")
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
