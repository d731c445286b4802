# A "cross-compiler": runs on the build platform, writes an artifact for the target.
echo "built for $1 on $2 by a $(uname -m) machine"
