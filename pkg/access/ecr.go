package access

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

// ecrHost matches an ECR registry host: <account>.dkr.ecr.<region>.amazonaws.com(.cn).
var ecrHost = regexp.MustCompile(`^(\d{12})\.dkr(?:-fips)?\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ecrCredential asks ECR for a token for host (the repository's registry) with the source's
// AWS credentials, or the environment's / instance role's when the keys are omitted, after
// assuming aws_role_arn or each of aws_role_arns in turn.
func ecrCredential(ctx context.Context, src api.Source, host string) (Credential, error) {
	account, region := "", src.AWSRegion
	if m := ecrHost.FindStringSubmatch(host); m != nil {
		account = m[1]
		if region == "" {
			region = m[2]
		}
	}
	if region == "" {
		return Credential{}, fmt.Errorf("source.aws_region: required: %s names no ECR region", host)
	}
	cfg, err := awsConfig(ctx, src, region)
	if err != nil {
		return Credential{}, err
	}
	input := &ecr.GetAuthorizationTokenInput{}
	if account != "" {
		input.RegistryIds = []string{account} //nolint:staticcheck // the field is deprecated, and still honoured
	}
	out, err := ecr.NewFromConfig(cfg).GetAuthorizationToken(ctx, input)
	if err != nil {
		return Credential{}, fmt.Errorf("source.aws_*: ECR GetAuthorizationToken for %s in %s: %w", host, region, err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return Credential{}, fmt.Errorf("source.aws_*: ECR GetAuthorizationToken for %s in %s: no token in the answer", host, region)
	}
	return decodeECRToken(*out.AuthorizationData[0].AuthorizationToken, host)
}

// awsConfig loads the SDK's configuration for region with the source's keys (else the default
// chain: environment, shared files, instance role) and the roles to assume.
func awsConfig(ctx context.Context, src api.Source, region string) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if src.AWSAccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(src.AWSAccessKeyID, src.AWSSecretAccessKey, src.AWSSessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("source.aws_*: loading the AWS configuration: %w", err)
	}
	roles := src.AWSRoleARNs
	if src.AWSRoleARN != "" {
		roles = []string{src.AWSRoleARN}
	}
	for _, arn := range roles {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), arn, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "buildah-image-resource"
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	return cfg, nil
}

// decodeECRToken splits an ECR token, base64 of "AWS:<password>".
func decodeECRToken(token, host string) (Credential, error) {
	decoded, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return Credential{}, fmt.Errorf("source.aws_*: the ECR token for %s is not base64", host)
	}
	user, pass, ok := strings.Cut(string(decoded), ":")
	if !ok || user == "" || pass == "" {
		return Credential{}, fmt.Errorf("source.aws_*: the ECR token for %s is not username:password", host)
	}
	return Credential{Username: user, Password: pass, Origin: "the ECR token of the aws_* fields"}, nil
}
