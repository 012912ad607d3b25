package kubernetes_test

// The integration tests run servingkit against a real kube-apiserver and
// etcd through controller-runtime's envtest. There is no kubelet and no
// controller manager: the tests play the kubelet (see kubelet below),
// starting a local pod — the queue binary in front of a small app — for
// each replica a Deployment's scale asks for, and writing its EndpointSlice.
// servingkit itself runs as real processes (cmd/servingkit), authenticated
// as the service account of deploy/servingkit.yaml with exactly the RBAC
// written there, so the manifests' rules are tested too.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Versions the assets script builds; the default cache directory when
// KUBEBUILDER_ASSETS is unset.
const assetsSubdir = "k8s-v1.37.1-etcd-v3.7.3"

var (
	skipReason string
	restCfg    *rest.Config
	admin      kubernetes.Interface
	kubeconfig string // the servingkit service account's
	bins       struct{ servingkit, queue, app string }
	tmpDir     string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if home, err := os.UserHomeDir(); err == nil {
			assets = filepath.Join(home, ".cache", "servingkit", "envtest", assetsSubdir)
		}
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			msg := fmt.Sprintf("envtest: %s not found in KUBEBUILDER_ASSETS=%q; build it with "+
				"KUBEBUILDER_ASSETS=$(kubernetes/hack/envtest-assets.sh) (several minutes the first time)", b, assets)
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "FAIL:", msg)
				return 1
			}
			skipReason = msg
			return m.Run()
		}
	}
	var err error
	tmpDir, err = os.MkdirTemp("", "servingkit-envtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpDir)
	for _, b := range []struct {
		dst *string
		pkg string
	}{{&bins.servingkit, "./cmd/servingkit"}, {&bins.queue, "./cmd/queue"}, {&bins.app, "./internal/testapp"}} {
		*b.dst = filepath.Join(tmpDir, filepath.Base(b.pkg))
		out, err := exec.Command("go", "build", "-o", *b.dst, b.pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	restCfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest start:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	admin = kubernetes.NewForConfigOrDie(restCfg)
	if err := applyRBAC(restCfg); err != nil {
		fmt.Fprintln(os.Stderr, "rbac:", err)
		return 1
	}
	user, err := env.AddUser(envtest.User{Name: "system:serviceaccount:servingkit:servingkit",
		Groups: []string{"system:serviceaccounts", "system:authenticated"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest user:", err)
		return 1
	}
	kc, err := user.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		return 1
	}
	kubeconfig = filepath.Join(tmpDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(tmpDir, "peer-token"), []byte("test-peer-token\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Knative's minimums, so that a scale to zero takes seconds, and apps
	// that start at zero (createApp's initial-scale 0).
	cfgDir := filepath.Join(tmpDir, "config-autoscaler")
	_ = os.Mkdir(cfgDir, 0o700)
	for k, v := range map[string]string{"stable-window": "6s", "scale-to-zero-grace-period": "1s", "allow-zero-initial-scale": "true"} {
		if err := os.WriteFile(filepath.Join(cfgDir, k), []byte(v), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

func needEnv(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// applyRBAC creates the Namespace and the RBAC objects of
// deploy/servingkit.yaml, exactly as written.
func applyRBAC(cfg *rest.Config) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	f, err := os.Open("deploy/servingkit.yaml")
	if err != nil {
		return err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	n := 0
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		switch u.GetKind() {
		case "Namespace", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := c.Create(context.Background(), &u); err != nil {
				return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
			}
			n++
		}
	}
	if n != 5 {
		return fmt.Errorf("deploy/servingkit.yaml: applied %d RBAC objects and namespaces, want 5", n)
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ptr[T any](v T) *T { return &v }

// syncBuffer collects a process's output for assertions and failure logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newNamespace creates a namespace for one test.
func newNamespace(t testing.TB, name string) string {
	t.Helper()
	_, err := admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// createApp creates a Deployment at zero replicas and a Service annotated
// for servingkit, targeting it, with initial scale 0 (Knative's default is
// 1: a new Service would first scale to one pod).
func createApp(t testing.TB, ns, name string, annotations map[string]string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	_, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/hello"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{"servingkit.dev/target": "deployments.apps/" + name, "autoscaling.knative.dev/initial-scale": "0"}
	for k, v := range annotations {
		ann[k] = v
	}
	_, err = admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80},
				{Name: "queue-admin", Port: 9091},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func replicas(t testing.TB, ns, name string) int {
	t.Helper()
	sc, err := admin.AppsV1().Deployments(ns).GetScale(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return int(sc.Spec.Replicas)
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// servingkit is one cmd/servingkit process.
type servingkit struct {
	name    string
	gateway string
	peer    string // host:port of its peer listener (/metrics)
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
}

func startServingkit(t testing.TB, ns, name, lease string) *servingkit {
	t.Helper()
	return startServingkitWith(t, ns, name, lease, freePort(t))
}

// holderID is the Lease holder identity of the servingkit process name
// whose peer port is peerPort.
func holderID(name string, peerPort int) string {
	return name + "@127.0.0.1:" + strconv.Itoa(peerPort)
}

// startServingkitWith starts a servingkit process with its peer listener
// on peerPort and more flags.
func startServingkitWith(t testing.TB, ns, name, lease string, peerPort int, args ...string) *servingkit {
	t.Helper()
	gw := freePort(t)
	sk := &servingkit{name: name, gateway: "127.0.0.1:" + strconv.Itoa(gw), peer: "127.0.0.1:" + strconv.Itoa(peerPort),
		log: &syncBuffer{}, exited: make(chan struct{})}
	sk.cmd = exec.Command(bins.servingkit, append([]string{
		"--kubeconfig", kubeconfig, "--namespace", ns, "--name", name,
		"--gateway-addr", sk.gateway, "--peer-addr", sk.peer, "--advertise", "127.0.0.1",
		"--peer-token-file", filepath.Join(tmpDir, "peer-token"),
		"--autoscaler-config", filepath.Join(tmpDir, "config-autoscaler"),
		"--lease-namespace", "servingkit", "--lease-prefix", lease, "--lease-duration", "3s",
		"--drain-timeout", "10s"}, args...)...)
	sk.cmd.Stdout, sk.cmd.Stderr = sk.log, sk.log
	if err := startProc(t, sk.cmd); err != nil {
		t.Fatal(err)
	}
	go func() { _ = sk.cmd.Wait(); close(sk.exited) }()
	t.Cleanup(func() {
		sk.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("servingkit %s log:\n%s", name, sk.log.String())
		}
	})
	eventually(t, 20*time.Second, "servingkit "+name+" gateway listening", func() bool {
		c, err := net.Dial("tcp", sk.gateway)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return sk
}

func (sk *servingkit) stop(sig syscall.Signal) {
	select {
	case <-sk.exited:
		return
	default:
	}
	_ = sk.cmd.Process.Signal(sig)
	select {
	case <-sk.exited:
	case <-time.After(20 * time.Second):
		_ = sk.cmd.Process.Kill()
		<-sk.exited
	}
}

var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}

// get sends GET path to the gateway with the Service's host.
func (sk *servingkit) get(ns, name, path string) (int, string, error) {
	return sk.getHost(name+"."+ns+".svc.cluster.local", path)
}

// getHost sends GET path to the gateway with host.
func (sk *servingkit) getHost(host, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+sk.gateway+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitRouted waits until the process serves the Service.
func (sk *servingkit) waitRouted(t testing.TB, ns, name string) {
	t.Helper()
	eventually(t, 20*time.Second, "servingkit "+sk.name+" serves "+ns+"/"+name, func() bool {
		_, ok := lineContaining(sk.log.String(), "service served", "service="+ns+"/"+name)
		return ok
	})
}

// kubelet plays the kubelet and the EndpointSlice controller for one
// Deployment: it runs as many local pods as the Deployment's scale asks
// for, each the queue binary in front of the test app, and publishes each
// ready pod in an EndpointSlice of its own, with ports per pod. The API
// server refuses loopback IPs in IPv4 slices, and an FQDN needs two
// labels, so the slices are of type FQDN with the address "127.0.0.1",
// which the FQDN rule accepts and the dialer reads as the IP.
type kubelet struct {
	t        testing.TB
	ns, name string
	cc       int
	quiet    time.Duration

	mu      sync.Mutex // protects pods, started
	pods    []*pod
	started int

	stop chan struct{}
	done chan struct{}
}

type pod struct {
	name        string
	app, queue  *exec.Cmd
	queueExited chan struct{}
	appExited   chan struct{}
	log         *syncBuffer
}

func startKubelet(t testing.TB, ns, name string, cc int) *kubelet {
	k := &kubelet{t: t, ns: ns, name: name, cc: cc, quiet: 500 * time.Millisecond,
		stop: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	t.Cleanup(func() {
		close(k.stop)
		<-k.done
		k.mu.Lock()
		pods := k.pods
		k.pods = nil
		k.mu.Unlock()
		for _, p := range pods {
			p.kill()
		}
	})
	return k
}

// Started is how many pods the kubelet started so far.
func (k *kubelet) Started() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.started
}

func (k *kubelet) run() {
	defer close(k.done)
	for {
		select {
		case <-k.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		sc, err := admin.AppsV1().Deployments(k.ns).GetScale(context.Background(), k.name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		want := int(sc.Spec.Replicas)
		k.mu.Lock()
		have := len(k.pods)
		k.mu.Unlock()
		switch {
		case have < want:
			var wg sync.WaitGroup
			for range want - have {
				wg.Go(k.startPod)
			}
			wg.Wait()
		case have > want:
			k.mu.Lock()
			gone := k.pods[want:]
			k.pods = k.pods[:want:want]
			k.mu.Unlock()
			var wg sync.WaitGroup
			for _, p := range gone {
				wg.Go(func() { k.stopPod(p) })
			}
			wg.Wait()
		}
	}
}

func (k *kubelet) startPod() {
	k.mu.Lock()
	k.started++
	name := fmt.Sprintf("%s-pod-%d", k.name, k.started)
	k.mu.Unlock()
	var p *pod
	var port, adminPort int
	for attempt := 1; ; attempt++ {
		var ready bool
		p, port, adminPort, ready = k.launch(name)
		if ready {
			break
		}
		if p == nil {
			return // could not start: reported
		}
		exited := false
		select {
		case <-p.queueExited:
			exited = true
		case <-p.appExited:
			exited = true
		default:
		}
		p.kill()
		if !exited || attempt == 3 {
			k.t.Errorf("pod %s not ready after 15s (attempt %d):\n%s", name, attempt, p.log.String())
			return
		}
		// A port freePort found free was taken before the pod bound it
		// (for example as the source port of an outgoing connection during
		// a burst): start the pod again on other ports, as a kubelet
		// restarts a container that exited.
		k.t.Logf("pod %s exited before ready (attempt %d), starting it again:\n%s", name, attempt, p.log.String())
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: k.name, discoveryv1.LabelManagedBy: "servingkit-test-kubelet"}},
		AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"127.0.0.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: k.ns, Name: name},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr("http"), Port: ptr(int32(port)), Protocol: ptr(corev1.ProtocolTCP)},
			{Name: ptr("queue-admin"), Port: ptr(int32(adminPort)), Protocol: ptr(corev1.ProtocolTCP)},
		},
	}
	if _, err := admin.DiscoveryV1().EndpointSlices(k.ns).Create(context.Background(), es, metav1.CreateOptions{}); err != nil {
		k.t.Errorf("endpointslice %s: %v", name, err)
		p.kill()
		return
	}
	k.mu.Lock()
	k.pods = append(k.pods, p)
	k.mu.Unlock()
}

// stopPod is a pod's termination: out of the EndpointSlices first, then
// SIGTERM to the queue, which drains (quiet period, accepted requests
// finished), then the app.
func (k *kubelet) stopPod(p *pod) {
	err := admin.DiscoveryV1().EndpointSlices(k.ns).Delete(context.Background(), p.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		k.t.Errorf("delete endpointslice %s: %v", p.name, err)
	}
	_ = p.queue.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.queueExited:
	case <-time.After(40 * time.Second):
		k.t.Errorf("pod %s: queue did not drain in 40s", p.name)
	}
	p.kill()
}

func (p *pod) kill() {
	for _, c := range []*exec.Cmd{p.queue, p.app} {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
	<-p.queueExited
	<-p.appExited
}

// lineContaining returns the first line of s that contains every part.
func lineContaining(s string, parts ...string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(sc.Text(), p)
		}
		if ok {
			return sc.Text(), true
		}
	}
	return "", false
}

// metrics returns the process's /metrics samples, by series
// ("name{labels}").
func (sk *servingkit) metrics(t testing.TB) map[string]int64 {
	t.Helper()
	resp, err := httpClient.Get("http://" + sk.peer + "/metrics")
	if err != nil {
		t.Fatalf("servingkit %s /metrics: %v", sk.name, err)
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		n, err := strconv.ParseInt(line[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("servingkit %s /metrics: bad line %q", sk.name, line)
		}
		out[line[:i]] = n
	}
	return out
}

// metric returns one sample of sk's /metrics for Service key.
func (sk *servingkit) metric(t testing.TB, name, key string, labels ...string) int64 {
	t.Helper()
	series := name + `{service="` + key + `"`
	for _, l := range labels {
		series += "," + l
	}
	return sk.metrics(t)[series+"}"]
}

// launch starts one pod's app and queue on fresh ports and waits up to 15 s
// for its readiness; p is nil when a process could not be started
// (reported).
func (k *kubelet) launch(name string) (p *pod, port, adminPort int, ready bool) {
	appPort := freePort(k.t)
	port, adminPort = freePort(k.t), freePort(k.t)
	p = &pod{name: name, queueExited: make(chan struct{}), appExited: make(chan struct{}), log: &syncBuffer{}}
	p.app = exec.Command(bins.app, "--addr", "127.0.0.1:"+strconv.Itoa(appPort), "--pod", name)
	p.queue = exec.Command(bins.queue, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--admin-port", strconv.Itoa(adminPort), "--app", "127.0.0.1:"+strconv.Itoa(appPort),
		"--container-concurrency", strconv.Itoa(k.cc), "--revision", k.ns+"/"+k.name, "--name", name,
		"--drain-quiet-period", k.quiet.String(), "--timeout", "30s")
	p.app.Stderr, p.queue.Stderr = p.log, p.log
	if err := startProc(k.t, p.app); err != nil {
		k.t.Errorf("start app: %v", err)
		return nil, 0, 0, false
	}
	go func() { _ = p.app.Wait(); close(p.appExited) }()
	if err := startProc(k.t, p.queue); err != nil {
		_ = p.app.Process.Kill()
		<-p.appExited
		k.t.Errorf("start queue: %v", err)
		return nil, 0, 0, false
	}
	go func() { _ = p.queue.Wait(); close(p.queueExited) }()
	// Readiness probe, as the kubelet would: the queue's /ready (which
	// probes the app).
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(adminPort) + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, port, adminPort, true
			}
		}
		select {
		case <-p.queueExited:
			return p, port, adminPort, false
		case <-p.appExited:
			return p, port, adminPort, false
		default:
		}
		if time.Now().After(deadline) {
			return p, port, adminPort, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
