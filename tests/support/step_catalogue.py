"""The ``step`` catalogue's source table: ``python -m tests.support.step_catalogue`` writes
``convviz/locale/{en,pt_BR}/LC_MESSAGES/step.po`` from it (then run
``python -m convviz.i18n compile``). One row per key keeps English and Portuguese together.
"""

from __future__ import annotations

from pathlib import Path

MESSAGES: list[tuple[str, str, str]] = [
    ("step.title", "One training step, stepped", "Um passo de treino, passo a passo"),
    ("step.intro",
     "The five steps of training on real numbers: initialise the weights, run the batch "
     "forward, measure the loss, backpropagate its gradient, update the weights. Every number "
     "comes from convviz's own network code, the one the Train page trains with.",
     "Os cinco passos do treino com números de verdade: inicializar os pesos, passar o lote "
     "pela rede, medir a perda, retropropagar o gradiente e atualizar os pesos. Cada número vem "
     "do próprio código da rede do convviz, o mesmo com que a página Treinar treina."),
    ("step.net", "Network", "Rede"),
    ("step.net.help",
     "Hand-sized: one 3x3 conv with 2 filters, ReLU, 2x2 max pool and a dense layer to 10 "
     "classes, on 10x10 digits (the 20x20 box where MNIST draws each digit, averaged 2x2), so "
     "every cell fits on screen. Tiny and Classic: the real presets on 28x28 digits, shown as "
     "chosen weights and summaries.",
     "Do tamanho da mão: uma convolução 3x3 com 2 filtros, ReLU, pooling máximo 2x2 e uma "
     "camada densa para 10 classes, em dígitos 10x10 (a caixa 20x20 onde o MNIST desenha cada "
     "dígito, com médias 2x2), para que cada célula caiba na tela. Tiny e Classic: as "
     "arquiteturas reais em dígitos 28x28, mostradas por pesos escolhidos e resumos."),
    ("step.net.hand", "Hand-sized (10x10, 350 weights)", "Do tamanho da mão (10x10, 350 pesos)"),
    ("step.net.tiny", "Tiny (preset)", "Tiny (pronta)"),
    ("step.net.classic", "Classic (preset)", "Classic (pronta)"),
    ("step.batch_size", "Batch size", "Tamanho do lote"),
    ("step.batch_seed", "Batch seed", "Semente do lote"),
    ("step.batch_seed.help",
     "Which MNIST training digits make the batch: the same seed draws the same digits.",
     "Quais dígitos de treino do MNIST formam o lote: a mesma semente sorteia os mesmos dígitos."),
    ("step.redraw", "New batch", "Novo lote"),
    ("step.redraw.help", "Draw other digits (the next seed).",
     "Sortear outros dígitos (a próxima semente)."),
    ("step.scheme", "Weight initialisation", "Inicialização dos pesos"),
    ("step.scheme.gaussian", "Gaussian (σ = 0.05)", "Gaussiana (σ = 0,05)"),
    ("step.scheme.uniform", "Uniform (±0.05)", "Uniforme (±0,05)"),
    ("step.scheme.he_normal", "He (normal)", "He (normal)"),
    ("step.scheme.glorot_uniform", "Glorot (uniform)", "Glorot (uniforme)"),
    ("step.optimizer", "Optimizer", "Otimizador"),
    ("step.optimizer.sgd", "SGD", "SGD"),
    ("step.optimizer.rmsprop", "RMSprop", "RMSprop"),
    ("step.optimizer.adam", "Adam", "Adam"),
    ("step.lr", "Learning rate", "Taxa de aprendizado"),
    ("step.weight.filter", "Weight: filter", "Peso: filtro"),
    ("step.weight.help",
     "The first conv's weight whose gradient and update the Backpropagation and Update steps "
     "follow: its filter, and its row and column in the 3x3 kernel.",
     "O peso da primeira convolução cujo gradiente e atualização os passos Retropropagação e "
     "Atualização acompanham: o seu filtro, e a sua linha e coluna no kernel 3x3."),
    ("step.weight.row", "Row", "Linha"),
    ("step.weight.col", "Column", "Coluna"),
    ("step.batch",
     "Batch of {n} digits, labels {labels}; loss before the step {loss}.",
     "Lote de {n} dígitos, rótulos {labels}; perda antes do passo {loss}."),
    ("step.stage", "Step", "Passo"),
    ("step.stage.init", "{n}. Initialise", "{n}. Inicializar"),
    ("step.stage.forward", "{n}. Forward pass", "{n}. Passagem para frente"),
    ("step.stage.loss", "{n}. Loss", "{n}. Perda"),
    ("step.stage.backprop", "{n}. Backpropagation", "{n}. Retropropagação"),
    ("step.stage.update", "{n}. Update", "{n}. Atualização"),
    ("step.prev", "Previous step", "Passo anterior"),
    ("step.next", "Next step", "Próximo passo"),
    ("step.sample", "Digit of the batch", "Dígito do lote"),
    ("step.sample.n", "#{i} (a {label})", "nº {i} (um {label})"),
    ("step.channel", "channel {k}", "canal {k}"),
    ("step.channels_side", "{title}, its {c} channels side by side",
     "{title}, os seus {c} canais lado a lado"),
    ("step.channels_shown", "{title}, its first {n} of {c} channels side by side",
     "{title}, os primeiros {n} de {c} canais lado a lado"),
    # 1. initialise
    ("step.init.intro",
     "Every kernel starts as random numbers drawn by the chosen scheme; the formula's "
     "parameter depends on the layer's fan-in (inputs per output) and fan-out.",
     "Cada kernel começa com números aleatórios sorteados pelo esquema escolhido; o parâmetro "
     "da fórmula depende do fan-in (entradas por saída) e do fan-out da camada."),
    ("step.init.about.gaussian",
     "Gaussian: a normal distribution with mean 0 and standard deviation 0.05, whatever the "
     "layer's size.",
     "Gaussiana: uma distribuição normal de média 0 e desvio padrão 0,05, qualquer que seja o "
     "tamanho da camada."),
    ("step.init.about.uniform",
     "Uniform: every value in [−0.05, 0.05] equally likely, whatever the layer's size.",
     "Uniforme: todo valor em [−0,05; 0,05] igualmente provável, qualquer que seja o tamanho "
     "da camada."),
    ("step.init.about.he_normal",
     "He: a normal distribution cut at two standard deviations, scaled so that the weights' "
     "standard deviation is √(2 / fan-in): made for ReLU layers.",
     "He: uma distribuição normal cortada em dois desvios padrão, escalada para que o desvio "
     "padrão dos pesos seja √(2 / fan-in): feita para camadas com ReLU."),
    ("step.init.about.glorot_uniform",
     "Glorot: uniform in [−ℓ, ℓ] with ℓ = √(6 / (fan-in + fan-out)), so signals keep their "
     "scale forward and back (the Keras default).",
     "Glorot: uniforme em [−ℓ, ℓ] com ℓ = √(6 / (fan-in + fan-out)), para que os sinais "
     "mantenham a escala na ida e na volta (o padrão do Keras)."),
    ("step.init.bias", "Biases start at zero.", "Os vieses começam em zero."),
    ("step.init.hist_title", "{name} ({shape}, {n} weights)", "{name} ({shape}, {n} pesos)"),
    ("step.col.layer", "Layer", "Camada"),
    ("step.col.shape", "Kernel shape", "Forma do kernel"),
    ("step.col.fan_in", "Fan-in", "Fan-in"),
    ("step.col.fan_out", "Fan-out", "Fan-out"),
    ("step.col.limit", "Limit ℓ", "Limite ℓ"),
    ("step.col.std", "Standard deviation σ", "Desvio padrão σ"),
    ("step.col.min", "Smallest weight", "Menor peso"),
    ("step.col.max", "Largest weight", "Maior peso"),
    ("step.tex.fan_in", "fan-in", "fan-in"),
    ("step.tex.fan_out", "fan-out", "fan-out"),
    # 2. forward
    ("step.forward.intro",
     "The batch goes through the layers one after another; here is each layer's output for "
     "one digit of the batch.",
     "O lote atravessa as camadas uma depois da outra; aqui está a saída de cada camada para "
     "um dígito do lote."),
    ("step.forward.input", "Input: digit #{i} (a {label})", "Entrada: dígito nº {i} (um {label})"),
    ("step.forward.layer", "Layer {i}: {kind} {name}, output {shape}",
     "Camada {i}: {kind} {name}, saída {shape}"),
    ("step.forward.logits",
     "The last layer's outputs are the logits: the softmax turns them into probabilities "
     "in the next step.",
     "As saídas da última camada são os logits: a softmax os transforma em probabilidades no "
     "próximo passo."),
    ("step.forward.cell",
     "**The arithmetic of any cell** of filter {f} of the first convolution: step the window "
     "or pick a position.",
     "**A aritmética de qualquer célula** do filtro {f} da primeira convolução: avance a "
     "janela ou escolha uma posição."),
    # 3. loss
    ("step.loss.intro",
     "The softmax turns each digit's 10 logits into probabilities; the cross-entropy of a "
     "digit is −log of the probability given to its true class, and the batch's loss is their "
     "mean.",
     "A softmax transforma os 10 logits de cada dígito em probabilidades; a entropia cruzada "
     "de um dígito é −log da probabilidade dada à sua classe verdadeira, e a perda do lote é "
     "a média delas."),
    ("step.col.sample", "Digit", "Dígito"),
    ("step.col.true", "True class", "Classe verdadeira"),
    ("step.col.pred", "Predicted", "Prevista"),
    ("step.col.p_true", "p(true class)", "p(classe verdadeira)"),
    ("step.col.neg_log", "−log p(true class)", "−log p(classe verdadeira)"),
    ("step.loss.mean", "Batch loss (mean)", "Perda do lote (média)"),
    ("step.loss.probs", "Softmax probabilities", "Probabilidades da softmax"),
    ("step.loss.p", "probability", "probabilidade"),
    ("step.loss.class", "class", "classe"),
    ("step.loss.sample_axis", "digit of the batch", "dígito do lote"),
    # 4. backprop
    ("step.back.intro",
     "The loss's gradient flows back from the logits, layer by layer: here is the gradient "
     "reaching each layer's output (dL/d output) for one digit.",
     "O gradiente da perda volta a partir dos logits, camada por camada: aqui está o "
     "gradiente que chega à saída de cada camada (dL/d saída) para um dígito."),
    ("step.back.layer", "Gradient reaching layer {i}: {kind} {name} ({shape})",
     "Gradiente que chega à camada {i}: {kind} {name} ({shape})"),
    ("step.back.weight", "Weight (filter {f}, channel {c}, row {u}, column {v}) of the first conv",
     "Peso (filtro {f}, canal {c}, linha {u}, coluna {v}) da primeira convolução"),
    ("step.back.weight_intro",
     "This weight multiplied one input value at every output position of every digit, so its "
     "gradient is the sum over the batch and the positions of (upstream gradient × input "
     "value). Below, for one digit: the gradient at its filter's outputs, the input values it "
     "met, and their products.",
     "Este peso multiplicou um valor da entrada em cada posição de saída de cada dígito, "
     "então o seu gradiente é a soma, sobre o lote e as posições, de (gradiente que chega × "
     "valor da entrada). Abaixo, para um dígito: o gradiente nas saídas do seu filtro, os "
     "valores de entrada que ele encontrou e os produtos."),
    ("step.back.upstream", "Gradient at the filter's sums", "Gradiente nas somas do filtro"),
    ("step.back.inputs", "Inputs it multiplied (offset {u}, {v})",
     "Entradas multiplicadas (desloc. {u}, {v})"),
    ("step.back.products", "Products", "Produtos"),
    ("step.back.sum_head", "dL/dw[filter {f}, channel {c}, row {u}, column {v}] =",
     "dL/dw[filtro {f}, canal {c}, linha {u}, coluna {v}] ="),
    ("step.back.sum_sample", "  digit #{n}: {terms}  (+ {zeros} zero terms) = {part}",
     "  dígito nº {n}: {terms}  (+ {zeros} termos nulos) = {part}"),
    ("step.back.sum_sample_short", "  digit #{n}: {count} non-zero terms, sum {part}",
     "  dígito nº {n}: {count} termos não nulos, soma {part}"),
    ("step.back.sum_total", "total = {total}", "total = {total}"),
    ("step.back.total", "Sum of the terms", "Soma dos termos"),
    ("step.back.backprop", "Backpropagation's gradient", "Gradiente da retropropagação"),
    ("step.back.fd", "Finite difference", "Diferença finita"),
    ("step.back.rel", "Relative difference", "Diferença relativa"),
    ("step.back.fd_note.hand",
     "The finite difference nudges the weight by ±h and reruns the whole batch in float64: it "
     "agrees with backpropagation to better than 1e-6 relative.",
     "A diferença finita empurra o peso em ±h e roda o lote inteiro de novo em float64: ela "
     "concorda com a retropropagação melhor que 1e-6 relativo."),
    ("step.back.fd_note.preset",
     "The finite difference runs on a float64 copy of the network; backpropagation here is in "
     "float32, as training is, so they agree to about 1e-4 relative.",
     "A diferença finita roda numa cópia da rede em float64; a retropropagação aqui é em "
     "float32, como o treino, então elas concordam em cerca de 1e-4 relativo."),
    ("step.back.kernel_grad", "Gradient of the whole kernel (filter {f}, channel {c})",
     "Gradiente do kernel inteiro (filtro {f}, canal {c})"),
    # 5. update
    ("step.update.intro.sgd",
     "SGD moves every weight against its gradient, scaled by the learning rate η.",
     "O SGD move cada peso contra o seu gradiente, escalado pela taxa de aprendizado η."),
    ("step.update.intro.rmsprop",
     "RMSprop divides the gradient by the root of a running mean of its squares v (which "
     "starts at 0), so every weight moves by about the same amount.",
     "O RMSprop divide o gradiente pela raiz de uma média móvel dos seus quadrados v (que "
     "começa em 0), então cada peso se move mais ou menos o mesmo tanto."),
    ("step.update.intro.adam",
     "Adam keeps running means of the gradient (m) and of its square (v), both starting at 0, "
     "and corrects their bias towards 0 at the first steps.",
     "O Adam mantém médias móveis do gradiente (m) e do seu quadrado (v), ambas começando em "
     "0, e corrige o viés delas para 0 nos primeiros passos."),
    ("step.update.before", "Kernel before (filter {f}, channel {c})",
     "Kernel antes (filtro {f}, canal {c})"),
    ("step.update.after", "Kernel after (filter {f}, channel {c})",
     "Kernel depois (filtro {f}, canal {c})"),
    ("step.update.delta", "Change", "Mudança"),
    ("step.update.w_before", "Weight ({u}, {v}) before", "Peso ({u}, {v}) antes"),
    ("step.update.w_after", "Weight ({u}, {v}) after", "Peso ({u}, {v}) depois"),
    ("step.update.next_loss", "Loss on the same batch after the step",
     "Perda no mesmo lote depois do passo"),
    ("step.update.loss_before", "Loss before the step: {loss}.", "Perda antes do passo: {loss}."),
    # errors
    ("err.step.choice", "`{name}` must be one of {choices}", "`{name}` deve ser um de {choices}"),
    ("err.step.batch_size", "The batch size must be one of {sizes}, not {size}",
     "O tamanho do lote deve ser um de {sizes}, não {size}"),
    ("err.step.weight",
     "The chosen weight must lie in the first conv's kernel: filter below {f}, channel below "
     "{c}, row below {kh}, column below {kw}",
     "O peso escolhido deve estar no kernel da primeira convolução: filtro abaixo de {f}, "
     "canal abaixo de {c}, linha abaixo de {kh}, coluna abaixo de {kw}"),
    ("err.step.lr", "The learning rate must be a number above 0, not {lr}",
     "A taxa de aprendizado deve ser um número acima de 0, não {lr}"),
]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2] / "convviz" / "locale"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write() -> None:
    for col, (loc, lang) in enumerate((("en", "en"), ("pt_BR", "pt_BR")), start=1):
        lines = [
            f'# convviz: "step" messages ({lang}).',
            'msgid ""',
            'msgstr ""',
            '"Content-Type: text/plain; charset=UTF-8\\n"',
            f'"Language: {lang}\\n"',
            "",
        ]
        for row in MESSAGES:
            lines += [f"msgid {_q(row[0])}", f"msgstr {_q(row[col])}", ""]
        (ROOT / loc / "LC_MESSAGES" / "step.po").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    write()
