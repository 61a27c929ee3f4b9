package cli

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// The dashboard's pages, style sheet and script, embedded so that the binary serves them offline
// and `go install` of the plugin needs no asset build.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCookie carries the start's token once the printed URL has been opened.
const dashboardCookie = "podium_dashboard"

// contentSecurityPolicy lets a page load only the dashboard's own style sheet and script, connect
// only to itself, and post forms only to itself; nothing from the cluster can run as a script.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type dashboardOptions struct {
	*root
	address       string
	port          int
	open          bool
	allNamespaces bool
}

func newDashboardCommand(r *root) *cobra.Command {
	o := &dashboardOptions{root: r}
	cmd := &cobra.Command{
		Use:   "dashboard [--port P] [--address 127.0.0.1] [--open]",
		Short: "Serve a web page of a namespace's models: compare, trends, history, canaries, actions",
		Long: `Serve the dashboard: web pages of the namespace's models, their versions against the gates,
a comparison, a trend of each gated metric, the stage timeline and a running canary, kept up to date
from a watch. Its actions (promote, approve, roll back, pause, resume, abort) are the commands'
own, run with this command's kubeconfig, context and impersonation flags: the API server's RBAC
and the governance policies judge the person running it, and the history names them.

It listens on 127.0.0.1 unless --address says otherwise, and prints a URL with a token made at
each start: a browser without that token (another local user, another site) is refused. It stops
on Ctrl-C.`,
		Example: `  kubectl podium dashboard -n pokemon

  # Another port, and open the browser
  kubectl podium dashboard -n pokemon --port 9000 --open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.serve(cmd.Context()) },
	}
	cmd.Flags().StringVar(&o.address, "address", "127.0.0.1", "The address to listen on; anything but a loopback "+
		"address lets other machines reach the dashboard (they still need the printed token)")
	cmd.Flags().IntVar(&o.port, "port", 8765, "The port to listen on; 0 picks a free one")
	cmd.Flags().BoolVar(&o.open, "open", false, "Open the dashboard in the default browser")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "Show the models of every namespace")
	return cmd
}

func (o *dashboardOptions) serve(ctx context.Context) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", net.JoinHostPort(o.address, strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("listening on %s port %d: %w; pick another with --port", o.address, o.port, err)
	}
	if ip := net.ParseIP(o.address); ip == nil || !ip.IsLoopback() {
		_, _ = fmt.Fprintf(o.streams.ErrOut, "Warning: listening on %s, not a loopback address: anyone who can reach it "+
			"and has the URL below acts on the cluster as you\n", o.address)
	}
	d, err := newDashboard(o.root, c, listener.Addr().String(), o.allNamespaces)
	if err != nil {
		_ = listener.Close()
		return err
	}
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		_ = listener.Close()
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = listener.Close()
		return fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.live.run(ctx, watcher, d.watched())

	url := d.origin + "/?token=" + d.token
	_, _ = fmt.Fprintf(o.streams.Out, "Podium dashboard of %s: %s\nPress Ctrl-C to stop.\n", d.scope(), url)
	if o.open {
		openBrowser(o.streams.ErrOut, url)
	}
	server := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = server.Shutdown(shutdown)
	}()
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openBrowser asks the desktop to open url; it says so when it cannot, and the URL is printed.
func openBrowser(w interface{ Write([]byte) (int, error) }, url string) {
	name := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name = "explorer"
	}
	if err := exec.Command(name, url).Start(); err != nil {
		_, _ = fmt.Fprintf(w, "Could not open a browser (%v): open the URL above\n", err)
	}
}

// dashboard serves the pages. Every request must carry the token of this start (the printed URL
// sets it as a cookie), name this server as its Host (no DNS rebinding), and an action must also
// be a POST from one of its own pages (Origin, Sec-Fetch-Site and a form token).
type dashboard struct {
	r       *root
	cluster *cluster // in the namespace of the flags
	all     bool     // every namespace (-A), not only the cluster's
	origin  string   // http://HOST:PORT as the browser names it
	// hosts are the Host headers a loopback listener answers (no DNS rebinding); nil when it
	// listens on another address, whose names this cannot know: the token guards it alone.
	hosts     map[string]bool
	routes    *http.ServeMux
	token     string
	csrf      string
	pages     *template.Template
	static    http.Handler
	live      *liveUpdates
	actionsMu sync.Mutex // one action at a time: each is a command's run
}

func newDashboard(r *root, c *cluster, addr string, all bool) (*dashboard, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(secret)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("csrf"))
	host, port, _ := net.SplitHostPort(addr)
	origin := "http://" + addr
	var hosts map[string]bool
	switch ip := net.ParseIP(host); {
	case ip != nil && ip.IsLoopback():
		hosts = map[string]bool{addr: true, "localhost:" + port: true}
	case ip != nil && ip.IsUnspecified():
		origin = "http://127.0.0.1:" + port
	}
	pages, err := template.New("").Funcs(pageFuncs).ParseFS(dashboardFiles, "dashboard/*.html")
	if err != nil {
		return nil, err
	}
	assets, err := fs.Sub(dashboardFiles, "dashboard/static")
	if err != nil {
		return nil, err
	}
	d := &dashboard{
		r: r, cluster: c, all: all, origin: origin, hosts: hosts, token: token, csrf: hex.EncodeToString(mac.Sum(nil)),
		pages: pages, static: http.StripPrefix("/static/", http.FileServer(http.FS(assets))), live: newLiveUpdates(),
	}
	d.routes = d.mux()
	return d, nil
}

func (d *dashboard) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make a form post's Origin "null"
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if d.hosts != nil && !d.hosts[req.Host] {
		http.Error(w, "this dashboard answers only as "+d.origin, http.StatusMisdirectedRequest)
		return
	}
	if t := req.URL.Query().Get("token"); t != "" && req.Method == http.MethodGet {
		if !equal(t, d.token) {
			d.refuse(w, http.StatusUnauthorized, "The token in this URL is not this dashboard's: "+
				"open the URL that kubectl podium dashboard printed when it started.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: dashboardCookie, Value: d.token, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode})
		q := req.URL.Query()
		q.Del("token")
		req.URL.RawQuery = q.Encode()
		http.Redirect(w, req, req.URL.RequestURI(), http.StatusSeeOther)
		return
	}
	if cookie, err := req.Cookie(dashboardCookie); err != nil || !equal(cookie.Value, d.token) {
		d.refuse(w, http.StatusUnauthorized, "This browser has not opened the dashboard's URL yet: open the URL that "+
			"kubectl podium dashboard printed when it started (its token changes at every start).")
		return
	}
	if strings.HasPrefix(req.URL.Path, "/static/") {
		d.static.ServeHTTP(w, req)
		return
	}
	d.routes.ServeHTTP(w, req)
}

// mux routes the pages: the models at /, a model at /namespaces/NS/models/NAME, its actions'
// confirmation and post under it, and the live updates at /events.
func (d *dashboard) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /events", d.live.serve)
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) { d.get(w, req, d.modelsPage) })
	m.HandleFunc("GET /namespaces/{ns}/models/{name}", d.page(d.modelPage))
	m.HandleFunc("GET /namespaces/{ns}/models/{name}/confirm", d.page(d.confirmPage))
	m.HandleFunc("POST /namespaces/{ns}/models/{name}/actions", func(w http.ResponseWriter, req *http.Request) {
		if c := d.in(w, req); c != nil {
			d.act(w, req, c, req.PathValue("name"))
		}
	})
	m.HandleFunc("/namespaces/{ns}/models/{name}/actions", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		d.refuse(w, http.StatusMethodNotAllowed, "An action is posted from its confirmation page, never by a link.")
	})
	readOnly := func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", http.MethodGet)
		d.refuse(w, http.StatusMethodNotAllowed, "This page only shows; actions are the buttons of its pages.")
	}
	m.HandleFunc("/namespaces/{ns}/models/{name}", readOnly)
	m.HandleFunc("/namespaces/{ns}/models/{name}/confirm", readOnly)
	m.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		d.refuse(w, http.StatusNotFound, "No such page.")
	})
	return m
}

// page serves a model's page, in the namespace of its path.
func (d *dashboard) page(render func(context.Context, *http.Request, *cluster, string) (string, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if c := d.in(w, req); c != nil {
			d.get(w, req, func(ctx context.Context, req *http.Request) (string, any, error) {
				return render(ctx, req, c, req.PathValue("name"))
			})
		}
	}
}

// in is the cluster of the request's namespace, or nil, with the refusal written, when this
// dashboard does not show it.
func (d *dashboard) in(w http.ResponseWriter, req *http.Request) *cluster {
	ns := req.PathValue("ns")
	if !d.all && ns != d.cluster.namespace {
		d.refuse(w, http.StatusNotFound, fmt.Sprintf("This dashboard shows namespace %s; start it with -n %s, or with -A "+
			"for every namespace.", d.cluster.namespace, ns))
		return nil
	}
	return &cluster{client: d.cluster.client, namespace: ns}
}

// watched is the namespace the live updates watch: "" for every one.
func (d *dashboard) watched() string {
	if d.all {
		return ""
	}
	return d.cluster.namespace
}

// scope says what the dashboard shows.
func (d *dashboard) scope() string {
	if d.all {
		return "every namespace"
	}
	return "namespace " + d.cluster.namespace
}

// get renders a page that only reads (the routes take only GET for it).
func (d *dashboard) get(w http.ResponseWriter, req *http.Request,
	page func(context.Context, *http.Request) (string, any, error)) {
	name, data, err := page(req.Context(), req)
	if err != nil {
		d.refuse(w, http.StatusBadGateway, err.Error())
		return
	}
	d.render(w, http.StatusOK, name, data)
}

// act runs the action a confirmation page posted, as the command would, and shows its outcome.
func (d *dashboard) act(w http.ResponseWriter, req *http.Request, c *cluster, model string) {
	// The page posting it was served under this request's Host, which ServeHTTP checked.
	if origin := req.Header.Get("Origin"); origin != "" && origin != "http://"+req.Host {
		d.refuse(w, http.StatusForbidden, "Refused: the action came from another site ("+origin+").")
		return
	}
	if site := req.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		d.refuse(w, http.StatusForbidden, "Refused: the action did not come from one of the dashboard's pages.")
		return
	}
	if err := req.ParseForm(); err != nil || !equal(req.PostForm.Get("csrf"), d.csrf) {
		d.refuse(w, http.StatusForbidden, "Refused: the form's token is missing or not this dashboard's; "+
			"reload the page and try again.")
		return
	}
	act, ok := dashboardActions[req.PostForm.Get("action")]
	if !ok {
		d.refuse(w, http.StatusBadRequest, "No such action: "+req.PostForm.Get("action"))
		return
	}
	d.actionsMu.Lock()
	output, err := act.runAs(req.Context(), d.r, c.namespace, model, req.PostForm.Get("version"))
	d.actionsMu.Unlock()
	// The page is the outcome, a refusal included: it says which, in its heading.
	d.render(w, http.StatusOK, "result.html", resultPage{Namespace: c.namespace, Model: model, Action: act.Label,
		Output: output, Err: errText(err)})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// refuse shows a short page that says why, with the status code.
func (d *dashboard) refuse(w http.ResponseWriter, status int, message string) {
	d.render(w, status, "error.html", map[string]any{"Status": status, "Message": message})
}

func (d *dashboard) render(w http.ResponseWriter, status int, name string, data any) {
	var out strings.Builder
	if err := d.pages.ExecuteTemplate(&out, name, map[string]any{
		"Page": data, "Scope": d.scope(), "CSRF": d.csrf,
	}); err != nil {
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(out.String()))
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// liveUpdates watches the namespace's models and versions, once for every browser, and tells each
// page that listens on /events when something changed; the page then fetches itself again.
type liveUpdates struct {
	mu      sync.Mutex
	clients map[chan struct{}]bool
	state   string // "" while the watch runs; else why pages are not kept up to date
}

func newLiveUpdates() *liveUpdates { return &liveUpdates{clients: map[chan struct{}]bool{}} }

// run keeps the watches open until ctx ends, opening them again after an error.
func (l *liveUpdates) run(ctx context.Context, c client.WithWatch, namespace string) {
	lists := []client.ObjectList{&mlv1.RegisteredModelList{}, &mlv1.ModelVersionList{}}
	var wg sync.WaitGroup
	for _, list := range lists {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := l.watch(ctx, c, namespace, list)
				l.setState(err)
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
		})
	}
	wg.Wait()
}

func (l *liveUpdates) watch(ctx context.Context, c client.WithWatch, namespace string, list client.ObjectList) error {
	w, err := c.Watch(ctx, list, client.InNamespace(namespace))
	if err != nil {
		return explain(err)
	}
	defer w.Stop()
	l.setState(nil)
	l.notify() // what changed while no watch ran
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, open := <-w.ResultChan():
			if !open {
				return errors.New("the watch ended")
			}
			if ev.Type != watch.Bookmark {
				l.notify()
			}
		}
	}
}

func (l *liveUpdates) setState(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state = ""
	if err != nil {
		l.state = err.Error()
	}
}

// notify tells every listening page, without waiting for any: a page that has not taken the last
// change yet will fetch the newest state anyway.
func (l *liveUpdates) notify() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.clients {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// serve streams server-sent events: "change" when the namespace changed.
func (l *liveUpdates) serve(w http.ResponseWriter, req *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.clients[ch] = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.clients, ch)
		l.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case <-ch:
			_, _ = fmt.Fprint(w, "event: change\ndata: {}\n\n")
		case <-keepalive.C:
			_, _ = fmt.Fprint(w, ": keepalive\n\n")
		}
		flusher.Flush()
	}
}

// liveState says why pages are not kept up to date, or "" when they are.
func (l *liveUpdates) liveState() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}
