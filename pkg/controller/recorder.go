package controller

import (
	"hash/fnv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	cvscheme "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/scheme"
)

// EventSenders is how many Events the recorder of `run` sends at once.
// client-go's recorder sends one Event at a time and drops, without a
// word, what does not fit its queue of 1,000. In the bench's burst of
// 1,000 rollouts (2,000 Events) on a busy apiserver, one sender delivered
// 1,530 and lost the rest.
const EventSenders = 8

// NewRecorder is the event recorder `run` and `cr sync` give New: Events on
// CVs from component cvmanager, sent by senders client-go recorders. Each
// object's Events go through the same one, so they keep their order and
// client-go's aggregation and spam filter still see all of them.
func NewRecorder(kube kubernetes.Interface, senders int) record.EventRecorder {
	return newShardedRecorder(kube, max(senders, 1))
}

func newShardedRecorder(kube kubernetes.Interface, senders int) *shardedRecorder {
	utilruntime.Must(cvscheme.AddToScheme(scheme.Scheme))
	r := &shardedRecorder{}
	for range senders {
		broadcaster := record.NewBroadcaster()
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
		r.senders = append(r.senders, broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "cvmanager"}))
	}
	return r
}

// shardedRecorder spreads Events over its senders by the object's
// namespace and name.
type shardedRecorder struct {
	senders []record.EventRecorder
}

func (r *shardedRecorder) senderFor(object runtime.Object) record.EventRecorder {
	m, err := meta.Accessor(object)
	if err != nil {
		return r.senders[0]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(m.GetNamespace() + "/" + m.GetName()))
	return r.senders[h.Sum32()%uint32(len(r.senders))]
}

func (r *shardedRecorder) Event(object runtime.Object, eventtype, reason, message string) {
	r.senderFor(object).Event(object, eventtype, reason, message)
}

func (r *shardedRecorder) Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	r.senderFor(object).Eventf(object, eventtype, reason, messageFmt, args...)
}

func (r *shardedRecorder) AnnotatedEventf(object runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	r.senderFor(object).AnnotatedEventf(object, annotations, eventtype, reason, messageFmt, args...)
}
