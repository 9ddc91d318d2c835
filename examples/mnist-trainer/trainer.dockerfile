# Trains the digit reader; the model is written to /models/model.pkl.
FROM python:3.12-slim

WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home app && mkdir /models && chown app:app /models

COPY train.py .

ENV MODEL_DIR=/models \
    PYTHONUNBUFFERED=1
USER app

ENTRYPOINT ["python", "train.py"]
CMD ["--epochs", "50"]
