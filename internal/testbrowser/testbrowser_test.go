package testbrowser_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/podium-dev/podium/internal/testbrowser"
)

// page is a button that changes a text when clicked, and writes a console error when clicked.
const page = `<!DOCTYPE html>
<html>
<head><title>testbrowser</title></head>
<body>
<p id="status">waiting</p>
<button id="go" onclick="clicked()">Go</button>
<p id="done" hidden>done</p>
<script>
function clicked() {
  document.getElementById("status").textContent = "clicked";
  document.getElementById("done").hidden = false;
  console.error("clicked on purpose");
}
</script>
</body>
</html>
`

func TestClickChangesText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)

	ctx := testbrowser.Start(t)
	console := testbrowser.WatchConsole(t, ctx)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL),
		chromedp.WaitVisible(chromedp.ID("go")),
	); err != nil {
		t.Fatal(err)
	}
	before, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
	if err != nil {
		t.Fatal(err)
	}
	if before != "waiting" {
		t.Fatalf("status before the click = %q, want %q", before, "waiting")
	}

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatal(err)
	}
	after, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
	if err != nil {
		t.Fatal(err)
	}
	if after != "clicked" {
		t.Fatalf("status after the click = %q, want %q", after, "clicked")
	}

	path := filepath.Join(t.TempDir(), "shots", "clicked.png")
	testbrowser.Screenshot(t, ctx, path)
	png, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Fatalf("the screenshot is not a PNG of a page: %d bytes starting %q", len(png), png[:min(len(png), 8)])
	}

	got, err := console.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("waiting for the console error: %v (collected %q)", err, got)
	}
	if len(got) != 1 || !strings.Contains(got[0], "clicked on purpose") {
		t.Fatalf("console errors = %q, want one with %q", got, "clicked on purpose")
	}
}

func TestReachesLoopbackOnly(t *testing.T) {
	ctx := testbrowser.Start(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.Navigate("http://example.com/"))
	if err == nil || !strings.Contains(err.Error(), "ERR_NAME_NOT_RESOLVED") {
		t.Fatalf("navigating to example.com: %v, want net::ERR_NAME_NOT_RESOLVED", err)
	}
}
