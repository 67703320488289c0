package localregistry

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// PushCreated uploads a new random image whose config says it was built
// at created, under every tag, and returns its digest: branch releases
// order a branch's versions by that time, not by push order.
func (r *Registry) PushCreated(path string, created time.Time, tags ...string) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", err
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: created}); err != nil {
		return "", err
	}
	return r.pushImage(path, img, tags)
}
