package worker

import (
	"errors"
	"strings"
	"testing"
)

// How a worker's end is classified, and the error its waiter gets: the
// one place where the pool says whose fault a failure is.
func TestClassifyWorkerEnd(t *testing.T) {
	killedBySignal := errors.New("signal: killed")
	exit2 := errors.New("exit status 2")
	panicSaid := &DocError{Kind: KindPanic, Msg: "panic: boom"}
	notPDF := &DocError{Kind: "notpdf", Msg: "no %PDF- header"}
	call := &call{}
	cases := []struct {
		name    string
		end     ending
		exit    exit
		want    Outcome
		kind    string
		is      error  // the error wraps this, if set
		message string // and says this
	}{
		{name: "closed", end: ending{note: "pool closed"}, exit: exit{killed: killedClosed, waitErr: killedBySignal},
			want: Closed, is: ErrPoolClosed},
		{name: "closed while starting", end: ending{opening: true, starting: true}, exit: exit{killed: killedClosed},
			want: Closed, is: ErrPoolClosed},
		{name: "no hello", end: ending{note: "exited before it was ready", opening: true, starting: true}, exit: exit{waitErr: exit2},
			want: NotStarted, is: ErrCrashed, message: "starting split worker"},
		{name: "started too slowly", end: ending{note: "started too slowly", opening: true, starting: true},
			exit: exit{killed: killedTimeout, detail: "after 30s starting", waitErr: killedBySignal},
			want: NotStarted, is: ErrTimeout, message: "starting split worker"},
		{name: "the source took the timeout", end: ending{call: call}, exit: exit{killed: killedSourceTimeout, detail: "after 3s", waitErr: killedBySignal},
			want: SourceFailed, is: ErrTimeout, message: "reading the source"},
		{name: "a read of the source failed during the open", end: ending{graceful: true, said: notPDF, opening: true, source: errors.New("503")},
			exit: exit{asked: true}, want: SourceFailed, message: "reading the source: 503"},
		{name: "a failed read beats a kill", end: ending{call: call, source: errors.New("503")}, exit: exit{killed: killedMemory},
			want: SourceFailed, message: "503"},
		{name: "memory", end: ending{call: call}, exit: exit{killed: killedMemory, detail: "limit 64 MiB"},
			want: OutOfMemory, is: ErrMemoryLimit},
		{name: "timeout", end: ending{opening: true}, exit: exit{killed: killedTimeout, detail: "after 3s opening"},
			want: TimedOut, is: ErrTimeout},
		{name: "protocol", end: ending{call: call}, exit: exit{killed: killedProtocol, detail: "bad frame"},
			want: BrokeProtocol, is: ErrProtocol},
		{name: "idle and gone", end: ending{graceful: true, note: "idle"}, exit: exit{asked: true},
			want: None},
		{name: "evicted", end: ending{graceful: true, note: "evicted to make room"}, exit: exit{asked: true},
			want: None},
		{name: "refused the document", end: ending{graceful: true, note: "open failed", said: notPDF, opening: true}, exit: exit{asked: true},
			want: Refused, kind: "notpdf", message: "no %PDF- header"},
		{name: "reported a panic and went when asked", end: ending{graceful: true, said: panicSaid, call: call}, exit: exit{asked: true},
			want: Panicked, kind: KindPanic, message: "panic: boom"},
		{name: "went when asked, without the answer", end: ending{call: call}, exit: exit{asked: true},
			want: Crashed, is: ErrCrashed, message: "exited without an answer"},
		{name: "reported a panic and died of it", end: ending{graceful: true, note: "panic: boom", said: panicSaid, call: call}, exit: exit{asked: true, waitErr: exit2},
			want: Panicked, kind: KindPanic, is: ErrCrashed, message: "exit status 2"},
		{name: "died while idle", end: ending{note: "exited while idle"}, exit: exit{waitErr: killedBySignal},
			want: Crashed, is: ErrCrashed},
		{name: "died on a call", end: ending{note: "exited unexpectedly", call: call}, exit: exit{waitErr: exit2, tail: "fatal error: x"},
			want: Crashed, is: ErrCrashed, message: "stderr: fatal error: x"},
		{name: "refused, then did not exit in time", end: ending{graceful: true, note: "open failed", said: notPDF, opening: true},
			exit: exit{detail: "did not exit within 5s", waitErr: killedBySignal},
			want: Crashed, is: ErrCrashed, message: "did not exit within"},
	}
	w := &poolWorker{src: Source{ID: "doc@1"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := classify(tc.end, tc.exit)
			if o != tc.want {
				t.Fatalf("classify = %v, want %v", o, tc.want)
			}
			err := w.endError(o, tc.end, tc.exit, tc.exit.story(tc.end.note, tc.end.said))
			got, kind := OutcomeOf(err)
			if got != tc.want || kind != tc.kind {
				t.Fatalf("error %v carries %v %q, want %v %q", err, got, kind, tc.want, tc.kind)
			}
			if o == None {
				if err != nil {
					t.Fatalf("nobody waits, yet %v", err)
				}
				return
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("%v does not say %q", err, tc.message)
			}
			if o != Closed && !strings.HasPrefix(err.Error(), "doc@1: ") {
				t.Errorf("%v does not name the source", err)
			}
		})
	}
}

func TestOutcomeOf(t *testing.T) {
	if o, _ := OutcomeOf(nil); o != None {
		t.Errorf("nil: %v", o)
	}
	if o, _ := OutcomeOf(errors.New("context canceled")); o != Other {
		t.Errorf("a plain error: %v", o)
	}
	wrapped := errors.Join(errors.New("x"), &Error{Outcome: TimedOut, Err: ErrTimeout})
	if o, _ := OutcomeOf(wrapped); o != TimedOut {
		t.Errorf("a wrapped pool error: %v", o)
	}
}
