package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"s3docs/internal/pdfgen"
	"s3docs/internal/testenv"
)

// The dashboard and the alert rules that operators get (and the package
// ships in /usr/share/s3docs).
const (
	dashboardPath  = "../../monitoring/grafana/s3docs.json"
	rulesPath      = "../../monitoring/prometheus/s3docs.rules.yml"
	rulesTestsPath = "../../monitoring/prometheus/s3docs.rules.test.yml"
)

// TestAlertRules checks the rules with promtool and runs their unit tests,
// in which each alert fires for one instance and not for another.
func TestAlertRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	out, err := testenv.Command(promtool, "check", "rules", rulesPath).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules := alertRules(t)
	if len(rules) < 7 {
		t.Fatalf("%d alerts in %s", len(rules), rulesPath)
	}
	cmd := testenv.Command(promtool, "test", "rules", filepath.Base(rulesTestsPath))
	cmd.Dir = filepath.Dir(rulesTestsPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// Every alert has a test in which it fires.
	tests, err := os.ReadFile(rulesTestsPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if !strings.Contains(string(tests), "alertname: "+r.name+"\n        exp_alerts:\n          - exp_labels:") {
			t.Errorf("alert %s has no test in which it fires", r.name)
		}
		if !strings.Contains(string(tests), "alertname: "+r.name+"\n        exp_alerts: []") {
			t.Errorf("alert %s has no test in which it stays quiet", r.name)
		}
	}
}

// alertRule is one alert of the rules file.
type alertRule struct{ name, expr string }

// alertRules reads the alerts of the rules file, as promtool prints them
// back (so YAML is parsed by the real tool, not by the test).
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	// promtool check rules --lint proves the file parses; the expressions
	// are taken from Prometheus itself in the live test. Here a small
	// reader of the file's own layout: "- alert: NAME" then "expr: |" and
	// its indented lines, or "expr: ONE LINE".
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		name, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "- alert: ")
		if !ok {
			continue
		}
		for i++; i < len(lines); i++ {
			l := strings.TrimSpace(lines[i])
			if e, ok := strings.CutPrefix(l, "expr: "); ok {
				if e != "|" {
					rules = append(rules, alertRule{name, e})
					break
				}
				var expr []string
				indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
				for i++; i < len(lines) && (strings.TrimSpace(lines[i]) == "" || len(lines[i])-len(strings.TrimLeft(lines[i], " ")) > indent); i++ {
					expr = append(expr, strings.TrimSpace(lines[i]))
				}
				rules = append(rules, alertRule{name, strings.Join(expr, " ")})
				break
			}
		}
	}
	return rules
}

// dashboard is what the tests read of the Grafana dashboard.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Multi      bool            `json:"multi"`
			IncludeAll bool            `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// TestDashboardShape checks the dashboard as Grafana will load it: the
// panels the operators asked for, an instance variable that every query
// filters on (one dashboard for the fleet), a data source variable, rates
// over $__rate_interval, and panels that do not overlap.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 {
		t.Errorf("title %q, uid %q, schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "instance" {
			if !v.Multi || !v.IncludeAll || !strings.Contains(v.Definition, "label_values(s3docs_") {
				t.Errorf("instance variable: multi %v, includeAll %v, definition %q", v.Multi, v.IncludeAll, v.Definition)
			}
		}
	}
	if vars["instance"] != "query" || vars["datasource"] != "datasource" {
		t.Errorf("variables %v: want instance (query) and datasource", vars)
	}
	titles := map[string]bool{}
	ids := map[int]bool{}
	var cells [][2]int
	for _, p := range d.Panels {
		titles[strings.ToLower(p.Title)] = true
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "timeseries" && p.Type != "stat" && p.Type != "gauge" {
			t.Errorf("panel %q of type %q", p.Title, p.Type)
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the datasource variable", p.Title, p.Datasource)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("panel %q has no unit", p.Title)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if slices.Contains(cells, [2]int{x, y}) {
					t.Fatalf("panel %q overlaps another at %d,%d", p.Title, x, y)
				}
				cells = append(cells, [2]int{x, y})
			}
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q missing or twice", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			for _, sel := range selectors(tg.Expr) {
				if !strings.Contains(sel, `instance=~"$instance"`) {
					t.Errorf("panel %q: %s does not filter on the instance variable", p.Title, sel)
				}
			}
			if strings.Contains(tg.Expr, "rate(") && !strings.Contains(tg.Expr, "[$__rate_interval]") {
				t.Errorf("panel %q: a rate not over $__rate_interval: %s", p.Title, tg.Expr)
			}
		}
	}
	for _, want := range []string{"throughput", "request rates", "hit ratio", "cache fill", "evictions", "read latency",
		"errors by operation", "throttling", ".parts splits", ".parts split time", "daemon memory"} {
		found := false
		for title := range titles {
			found = found || strings.Contains(title, want)
		}
		if !found {
			t.Errorf("no panel about %q", want)
		}
	}
}

// selectors returns the series selectors of a PromQL expression, each a
// metric name with its matchers ("s3docs_cache_bytes{instance=~\".+\"}"):
// every identifier that is not a function, an aggregation, a keyword, or a
// label list of by/without/on/ignoring/group_left/group_right. It is a
// small scanner for the expressions of this repository's dashboard and
// rules; that it finds every metric is checked against the daemon's
// exports by TestMonitoringAgainstPrometheus.
func selectors(expr string) []string {
	var out []string
	skipGroup := func(i int, open, close byte) int {
		for ; i < len(expr) && expr[i] != close; i++ {
			if expr[i] == '"' {
				for i++; i < len(expr) && expr[i] != '"'; i++ {
					if expr[i] == '\\' {
						i++
					}
				}
			}
		}
		return i + 1
	}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"':
			i = skipGroup(i+1, '"', '"')
		case c == '[':
			i = skipGroup(i+1, '[', ']')
		case c == '{':
			i = skipGroup(i+1, '{', '}')
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			start := i
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
			name := expr[start:i]
			j := i
			for j < len(expr) && expr[j] == ' ' {
				j++
			}
			switch name {
			case "by", "without", "on", "ignoring", "group_left", "group_right":
				if j < len(expr) && expr[j] == '(' {
					i = skipGroup(j+1, '(', ')')
				}
				continue
			case "and", "or", "unless", "bool", "offset", "Inf", "NaN", "inf", "nan",
				// aggregations, also where by/without comes before their (
				"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values":
				continue
			}
			if j < len(expr) && expr[j] == '(' {
				continue // a function or an aggregation
			}
			if j < len(expr) && expr[j] == '{' {
				end := skipGroup(j+1, '{', '}')
				out = append(out, name+expr[j:end])
				i = end
				continue
			}
			out = append(out, name)
		default:
			i++
		}
	}
	return out
}

func TestSelectors(t *testing.T) {
	got := selectors(`histogram_quantile(0.99, sum by (instance, op, le) (rate(a_bucket{op=~"lookup|open", x="}"}[5m]))) / on (instance) group_left (b) up{job="s3docs"} > 0.5 and on (instance) c_total offset 5m or absent(d) * 1e3`)
	want := []string{`a_bucket{op=~"lookup|open", x="}"}`, `up{job="s3docs"}`, `c_total`, `d`}
	if !slices.Equal(got, want) {
		t.Fatalf("selectors: %q, want %q", got, want)
	}
}

// TestMonitoringAgainstPrometheus has a real Prometheus (Debian's) scrape a
// real daemon, with the alert rules loaded, while files are read, looked
// up, and split (a PDF that splits and one that does not, a name that is
// not there, a read that fails). Then every query of every dashboard panel
// returns at least one series, the instance variable finds the daemon,
// every alert rule evaluates without error, every series selector of every
// alert returns at least one series, and every metric the dashboard and the
// rules use is one the daemon exports.
func TestMonitoringAgainstPrometheus(t *testing.T) {
	prometheus := testenv.Tool(t, "prometheus")
	w := newWorld(t)
	data := testenv.RandomBytes(60, 20*mib)
	w.s3.Put(t, testBucket, "cases/a.pdf", data)
	w.s3.Put(t, testBucket, "cases/b.pdf", pdfgen.Bytes(pdfgen.Options{Pages: 60, Title: "b"}))
	w.s3.Put(t, testBucket, "cases/bad.pdf", []byte("not a PDF"))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := w.mount(t, mountOpts{extra: []string{"--metrics-addr", metricsAddr}})

	rules, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: s3docs
    static_configs: [{targets: [%q]}]
`, rules, metricsAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var promLog testenv.LockedBuffer
	cmd := testenv.Command(prometheus, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	api := "http://" + promAddr
	waitFor(t, 60*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// What the dashboard shows: reads (one fails), lookups (one of a name
	// that is not there), a PDF split into parts, one that cannot be.
	if got := sha256Of(t, d.path("cases/a.pdf")); got != sha256Hex(data) {
		t.Fatal("content differs")
	}
	if _, err := os.Stat(d.path("cases/missing.pdf")); !os.IsNotExist(err) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	parts := readDirNames(t, d.path(".parts/cases/b.pdf"))
	if len(parts) != 2 {
		t.Fatalf("parts of b.pdf: %v", parts)
	}
	if _, err := os.ReadFile(d.path(".parts/cases/b.pdf/" + parts[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(d.path(".parts/cases/bad.pdf")); err == nil {
		t.Fatal("parts of a file that is not a PDF were listed")
	}
	// An object replaced while open: its first read needs a GET, which
	// the store refuses for the old version.
	w.s3.Put(t, testBucket, "cases/c.pdf", testenv.RandomBytes(61, 3*mib))
	f, err := os.Open(d.path("cases/c.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w.s3.Put(t, testBucket, "cases/c.pdf", testenv.RandomBytes(62, 3*mib))
	if _, err := f.ReadAt(make([]byte, 4096), 2*mib); err == nil {
		t.Fatal("a read of a replaced object succeeded")
	}

	// Enough samples for every rate (two in its window), and the rules
	// evaluated at least once since.
	waitFor(t, 60*time.Second, "10 scrapes of the daemon", func() bool {
		r := promQuery(t, api, `count_over_time(up{job="s3docs"}[1m]) >= 10`)
		return len(r) == 1
	})
	exported := exportedMetrics(t, "http://"+metricsAddr+"/metrics")
	uses := func(where, expr string) {
		for _, sel := range selectors(expr) {
			name, _, _ := strings.Cut(sel, "{")
			if name == "up" || exported[name] {
				continue
			}
			t.Errorf("%s uses %s, which the daemon does not export", where, name)
		}
	}

	// The instance variable finds the daemon.
	dash := readDashboard(t)
	for _, v := range dash.Templating.List {
		if v.Name != "instance" {
			continue
		}
		metric := strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ", instance)")
		var values []string
		promGet(t, api+"/api/v1/label/instance/values?"+url.Values{"match[]": {metric}}.Encode(), &values)
		if !slices.Contains(values, metricsAddr) {
			t.Errorf("instance variable (%s): %v, want %s among them", v.Definition, values, metricsAddr)
		}
	}
	// Every query of every panel returns a series.
	checked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
			uses(where, tg.Expr)
			expr := strings.NewReplacer(`$instance`, metricsAddr, `$__rate_interval`, "1m").Replace(tg.Expr)
			if r := promQuery(t, api, expr); len(r) == 0 {
				t.Errorf("%s returns no series: %s", where, expr)
			}
			checked++
		}
	}
	// Every alert rule evaluates, and every selector of every alert
	// returns a series.
	var ruleState struct {
		Groups []struct {
			Rules []struct {
				Name, Query, Health, LastError, Type string
			} `json:"rules"`
		} `json:"groups"`
	}
	waitFor(t, 30*time.Second, "every rule evaluated", func() bool {
		promGet(t, api+"/api/v1/rules", &ruleState)
		n := 0
		for _, g := range ruleState.Groups {
			for _, r := range g.Rules {
				if r.Health == "ok" {
					n++
				}
			}
		}
		return n == len(alertRules(t))
	})
	for _, g := range ruleState.Groups {
		for _, r := range g.Rules {
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: health %s, %s", r.Name, r.Health, r.LastError)
			}
			where := "alert " + r.Name
			uses(where, r.Query)
			for _, sel := range selectors(r.Query) {
				if res := promQuery(t, api, sel); len(res) == 0 {
					t.Errorf("%s: %s returns no series", where, sel)
				}
				checked++
			}
		}
	}
	t.Logf("%d panel queries and alert selectors return series", checked)
}

// exportedMetrics scrapes the daemon and returns the names of its series
// (histograms' _bucket, _sum and _count included).
func exportedMetrics(t *testing.T, url string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, line := range strings.Split(scrape(t, url), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
	}
	return names
}

// promQuery runs an instant query and returns its result (a vector's
// series; a scalar is one).
func promQuery(t *testing.T, api, expr string) []json.RawMessage {
	t.Helper()
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	promGet(t, api+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &data)
	if data.ResultType == "scalar" {
		return []json.RawMessage{data.Result}
	}
	var series []json.RawMessage
	if err := json.Unmarshal(data.Result, &series); err != nil {
		t.Fatalf("query %s: result %s: %v", expr, data.Result, err)
	}
	return series
}

// promGet GETs a Prometheus API URL and decodes its data.
func promGet(t *testing.T, u string, data any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if body.Status != "success" {
		t.Fatalf("GET %s: %s: %s", u, body.Status, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
