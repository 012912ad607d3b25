package main

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spareOf waits for the spawner's spare and returns its PID.
func spareOf(t *testing.T, s *spawner) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.spare != nil {
			pid = s.spare.cmd.Process.Pid
		}
		return s.spare != nil
	}, 30*time.Second, 5*time.Millisecond, "no spare replica started")
	return pid
}

func helloSpec(name string) ReplicaSpec {
	return ReplicaSpec{Name: name, Revision: "default/hello-00001", App: "hello", Timeout: 10 * time.Second, DrainQuietPeriod: time.Millisecond}
}

// A cold start hands the spare replica process its spec (no exec on the
// path); the next spare starts only once that replica listens, so that it
// takes no CPU from the start-up a request waits for.
func TestSpawnerHandsTheSpareItsSpec(t *testing.T) {
	t.Parallel()
	s := newSpawner()
	defer s.close()
	s.refill()
	spare := spareOf(t, s)

	pr, err := s.start(helloSpec("hello-1"), func(string) {}, nil)
	require.NoError(t, err)
	defer pr.kill()
	assert.Equal(t, spare, pr.cmd.Process.Pid, "the spare runs the replica")
	for !pr.isListening() {
		s.mu.Lock()
		early := s.filling || s.spare != nil
		s.mu.Unlock()
		if early && !pr.isListening() {
			t.Fatal("the next spare started before the replica listened")
		}
		select {
		case <-pr.listening:
		case <-pr.exited:
			t.Fatalf("replica exited: %v", pr.err)
		case <-time.After(time.Millisecond):
		}
	}
	resp, err := http.Get("http://" + pr.hs.Serve + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.NotEqual(t, spare, spareOf(t, s), "a new spare")
}

// A spare that died while waiting is not used: the replica starts in a new
// process. close ends the spare.
func TestSpawnerDeadSpareAndClose(t *testing.T) {
	t.Parallel()
	s := newSpawner()
	s.refill()
	spare := spareOf(t, s)
	s.mu.Lock()
	dead := s.spare
	s.mu.Unlock()
	require.NoError(t, dead.cmd.Process.Kill())
	<-dead.waited

	pr, err := s.start(helloSpec("hello-2"), func(string) {}, nil)
	require.NoError(t, err)
	assert.NotEqual(t, spare, pr.cmd.Process.Pid)
	select {
	case <-pr.listening:
	case <-pr.exited:
		t.Fatalf("replica exited: %v", pr.err)
	}
	pr.kill()

	spareOf(t, s)
	s.mu.Lock()
	last := s.spare
	s.mu.Unlock()
	s.close()
	select {
	case <-last.waited:
	default:
		t.Fatal("close left the spare running")
	}
	s.refill()
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.False(t, s.filling || s.spare != nil, "no spare after close")
}
