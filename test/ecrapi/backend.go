package ecrapi

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// backend runs the registry v2 calls an ECR operation translates into.
type backend struct {
	host string
	auth authn.Authenticator
}

func (b *backend) options() []remote.Option { return []remote.Option{remote.WithAuth(b.auth)} }

// ref names a tag or a digest in a repository.
func (b *backend) ref(repository string, id imageID) (name.Reference, error) {
	if id.ImageDigest != "" {
		return name.NewDigest(b.host+"/"+repository+"@"+id.ImageDigest, name.Insecure)
	}
	return name.NewTag(b.host+"/"+repository+":"+id.ImageTag, name.Insecure)
}

func (b *backend) repo(repository string) (name.Repository, error) {
	return name.NewRepository(b.host+"/"+repository, name.Insecure)
}

// get fetches a manifest (exact bytes and media type).
func (b *backend) get(repository string, id imageID) (*remote.Descriptor, error) {
	ref, err := b.ref(repository, id)
	if err != nil {
		return nil, errorf("InvalidParameterException", "%v", err)
	}
	desc, err := remote.Get(ref, b.options()...)
	if err != nil {
		return nil, b.explain(repository, id, err)
	}
	return desc, nil
}

func (b *backend) head(repository string, id imageID) (*v1.Descriptor, error) {
	ref, err := b.ref(repository, id)
	if err != nil {
		return nil, errorf("InvalidParameterException", "%v", err)
	}
	desc, err := remote.Head(ref, b.options()...)
	if err != nil {
		return nil, b.explain(repository, id, err)
	}
	return desc, nil
}

// tags lists a repository's tags, sorted.
func (b *backend) tags(repository string) ([]string, error) {
	r, err := b.repo(repository)
	if err != nil {
		return nil, errorf("InvalidParameterException", "%v", err)
	}
	tags, err := remote.List(r, b.options()...)
	if err != nil {
		if hasCode(err, transport.NameUnknownErrorCode) {
			return nil, errorf("RepositoryNotFoundException", "The repository with name '%s' does not exist", repository)
		}
		return nil, err
	}
	sort.Strings(tags)
	return tags, nil
}

// tagsOf finds the tags on a digest: a HEAD per tag, which is what ECR
// saves its clients from.
func (b *backend) tagsOf(repository, digest string) ([]string, error) {
	all, err := b.tags(repository)
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, tag := range all {
		if d, err := b.head(repository, imageID{ImageTag: tag}); err == nil && d.Digest.String() == digest {
			tags = append(tags, tag)
		}
	}
	return tags, nil
}

// put stores a manifest under a tag, exactly as given.
func (b *backend) put(repository, tag string, manifest []byte, mediaType string) error {
	ref, err := b.ref(repository, imageID{ImageTag: tag})
	if err != nil {
		return errorf("InvalidParameterException", "%v", err)
	}
	return remote.Put(ref, rawManifest{manifest, types.MediaType(mediaType)}, b.options()...)
}

// untag removes one tag (Distribution v3 deletes by tag without touching
// the manifest).
func (b *backend) untag(repository, tag string) error {
	ref, err := b.ref(repository, imageID{ImageTag: tag})
	if err != nil {
		return errorf("InvalidParameterException", "%v", err)
	}
	if err := remote.Delete(ref, b.options()...); err != nil {
		return b.explain(repository, imageID{ImageTag: tag}, err)
	}
	return nil
}

// explain turns registry errors into ECR's exceptions.
func (b *backend) explain(repository string, id imageID, err error) error {
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		return err
	}
	if _, listErr := b.tags(repository); listErr != nil {
		return listErr
	}
	return errorf("ImageNotFoundException", "The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s'",
		id.ImageDigest, id.ImageTag, repository)
}

func hasCode(err error, code transport.ErrorCode) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	for _, d := range terr.Errors {
		if d.Code == code {
			return true
		}
	}
	return strings.Contains(err.Error(), string(code))
}

// rawManifest is a manifest to PUT as it is.
type rawManifest struct {
	bytes     []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.bytes, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
