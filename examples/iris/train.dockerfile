# A small ML training image, shaped like the Python projects our users write. The base
# is busybox so it builds with no registry; the "pip install" step is a stand-in that
# records the requirements, and the training script is shell.
FROM busybox:latest

WORKDIR /app

# Dependencies first, so editing the code does not redo this step.
COPY requirements.txt .
RUN mkdir -p /app/site-packages \
 && while read -r req; do echo "installing $req"; echo "$req" >> /app/site-packages/INSTALLED; done < requirements.txt

COPY src/ ./src/
COPY data/ ./data/

ENV MODEL_DIR=/app/artifacts \
    PYTHONUNBUFFERED=1
EXPOSE 8080

# Debian's busybox has no adduser applet; these lines are what `useradd app` writes.
RUN echo "app:x:1000:1000:app:/home/app:/bin/sh" >> /etc/passwd \
 && echo "app:x:1000:" >> /etc/group \
 && mkdir -p /home/app /app/artifacts && chown app:app /home/app /app/artifacts
USER app

ENTRYPOINT ["sh", "/app/src/train.sh"]
CMD ["--epochs", "3"]
