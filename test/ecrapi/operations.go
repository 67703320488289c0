package ecrapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// imageID is ECR's ImageIdentifier.
type imageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

type describeImagesInput struct {
	RegistryID     string    `json:"registryId"`
	RepositoryName string    `json:"repositoryName"`
	ImageIDs       []imageID `json:"imageIds"`
	NextToken      string    `json:"nextToken"`
	MaxResults     int       `json:"maxResults"`
}

type imageDetail struct {
	RegistryID             string   `json:"registryId,omitempty"`
	RepositoryName         string   `json:"repositoryName"`
	ImageDigest            string   `json:"imageDigest"`
	ImageTags              []string `json:"imageTags,omitempty"`
	ImageSizeInBytes       int64    `json:"imageSizeInBytes"`
	ImagePushedAt          float64  `json:"imagePushedAt"`
	ImageManifestMediaType string   `json:"imageManifestMediaType"`
}

// describeImages answers for the images named, or pages through all of
// them (maxResults ≤ 1000, nextToken).
func (s *Server) describeImages(in describeImagesInput) (any, error) {
	if len(in.ImageIDs) > 0 {
		var details []imageDetail
		for _, id := range in.ImageIDs {
			d, err := s.detail(in.RepositoryName, id)
			if err != nil {
				return nil, err
			}
			details = append(details, d)
		}
		return map[string]any{"imageDetails": details}, nil
	}
	return s.describeAll(in)
}

func (s *Server) detail(repository string, id imageID) (imageDetail, error) {
	desc, err := s.backend.head(repository, id)
	if err != nil {
		return imageDetail{}, err
	}
	tags, err := s.backend.tagsOf(repository, desc.Digest.String())
	if err != nil {
		return imageDetail{}, err
	}
	return imageDetail{RegistryID: s.registryID(), RepositoryName: repository, ImageDigest: desc.Digest.String(), ImageTags: tags,
		ImageSizeInBytes: desc.Size, ImagePushedAt: float64(s.opts.Clock.Now().Unix()), ImageManifestMediaType: string(desc.MediaType)}, nil
}

func (s *Server) describeAll(in describeImagesInput) (any, error) {
	tags, err := s.backend.tags(in.RepositoryName)
	if err != nil {
		return nil, err
	}
	var details []imageDetail
	seen := map[string]bool{}
	for _, tag := range tags {
		d, err := s.detail(in.RepositoryName, imageID{ImageTag: tag})
		if err != nil {
			return nil, err
		}
		if !seen[d.ImageDigest] {
			seen[d.ImageDigest] = true
			details = append(details, d)
		}
	}
	start, _ := strconv.Atoi(in.NextToken)
	size := in.MaxResults
	if size <= 0 || size > 1000 {
		size = 100
	}
	start = min(start, len(details))
	end := min(start+size, len(details))
	out := map[string]any{"imageDetails": details[start:end]}
	if end < len(details) {
		out["nextToken"] = strconv.Itoa(end)
	}
	return out, nil
}

type batchGetImageInput struct {
	RepositoryName     string    `json:"repositoryName"`
	ImageIDs           []imageID `json:"imageIds"`
	AcceptedMediaTypes []string  `json:"acceptedMediaTypes"`
}

type image struct {
	RegistryID             string  `json:"registryId"`
	RepositoryName         string  `json:"repositoryName"`
	ImageID                imageID `json:"imageId"`
	ImageManifest          string  `json:"imageManifest"`
	ImageManifestMediaType string  `json:"imageManifestMediaType"`
}

type imageFailure struct {
	ImageID       imageID `json:"imageId"`
	FailureCode   string  `json:"failureCode"`
	FailureReason string  `json:"failureReason"`
}

// batchGetImage returns manifests; missing images are failures, not errors.
func (s *Server) batchGetImage(in batchGetImageInput) (any, error) {
	images, failures := []image{}, []imageFailure{}
	for _, id := range in.ImageIDs {
		desc, err := s.backend.get(in.RepositoryName, id)
		if err != nil {
			if api, ok := err.(*apiError); ok && api.Type == "ImageNotFoundException" {
				failures = append(failures, imageFailure{ImageID: id, FailureCode: "ImageNotFound", FailureReason: "Requested image not found"})
				continue
			}
			return nil, err
		}
		images = append(images, image{RegistryID: s.registryID(), RepositoryName: in.RepositoryName,
			ImageID:       imageID{ImageDigest: desc.Digest.String(), ImageTag: id.ImageTag},
			ImageManifest: string(desc.Manifest), ImageManifestMediaType: string(desc.MediaType)})
	}
	return map[string]any{"images": images, "failures": failures}, nil
}

type putImageInput struct {
	RepositoryName         string `json:"repositoryName"`
	ImageManifest          string `json:"imageManifest"`
	ImageManifestMediaType string `json:"imageManifestMediaType"`
	ImageTag               string `json:"imageTag"`
	ImageDigest            string `json:"imageDigest"`
}

// putImage stores a manifest under a tag with ECR's rules: the same image
// already tagged is ImageAlreadyExistsException; a tag held by another image
// in an immutable repository is ImageTagAlreadyExistsException.
func (s *Server) putImage(in putImageInput) (any, error) {
	sum := sha256.Sum256([]byte(in.ImageManifest))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if in.ImageDigest != "" && in.ImageDigest != digest {
		return nil, errorf("ImageDigestDoesNotMatchException", "digest %s does not match the manifest (%s)", in.ImageDigest, digest)
	}
	if existing, err := s.backend.head(in.RepositoryName, imageID{ImageTag: in.ImageTag}); err == nil {
		if existing.Digest.String() == digest {
			return nil, errorf("ImageAlreadyExistsException", "Image with digest '%s' and tag '%s' already exists in the repository with name '%s'", digest, in.ImageTag, in.RepositoryName)
		}
		if s.isImmutable(in.RepositoryName) {
			return nil, errorf("ImageTagAlreadyExistsException", "The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.", in.ImageTag, in.RepositoryName)
		}
	}
	if err := s.backend.put(in.RepositoryName, in.ImageTag, []byte(in.ImageManifest), in.ImageManifestMediaType); err != nil {
		return nil, err
	}
	return map[string]any{"image": image{RegistryID: s.registryID(), RepositoryName: in.RepositoryName,
		ImageID:       imageID{ImageDigest: digest, ImageTag: in.ImageTag},
		ImageManifest: in.ImageManifest, ImageManifestMediaType: in.ImageManifestMediaType}}, nil
}

type batchDeleteImageInput struct {
	RepositoryName string    `json:"repositoryName"`
	ImageIDs       []imageID `json:"imageIds"`
}

// batchDeleteImage removes tags; a missing tag is a failure entry.
func (s *Server) batchDeleteImage(in batchDeleteImageInput) (any, error) {
	deleted, failures := []imageID{}, []imageFailure{}
	for _, id := range in.ImageIDs {
		desc, err := s.backend.head(in.RepositoryName, id)
		if err == nil {
			err = s.backend.untag(in.RepositoryName, id.ImageTag)
		}
		if err != nil {
			if api, ok := err.(*apiError); ok && api.Type == "ImageNotFoundException" {
				failures = append(failures, imageFailure{ImageID: id, FailureCode: "ImageNotFound", FailureReason: "Requested image not found"})
				continue
			}
			return nil, err
		}
		deleted = append(deleted, imageID{ImageDigest: desc.Digest.String(), ImageTag: id.ImageTag})
	}
	return map[string]any{"imageIds": deleted, "failures": failures}, nil
}

func (s *Server) isImmutable(repository string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.immutable[repository]
}

// registryID is the account; the stand-in serves one.
func (s *Server) registryID() string { return "123456789012" }
